//! HTTPS serving shared by iddecorator and token-service.
#![forbid(unsafe_code)]
