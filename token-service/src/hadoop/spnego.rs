//! SPNEGO (`Authorization: Negotiate <base64>`) as the service principal, from a keytab.
//!
//! Why process environment: MIT krb5 can take a client keytab and a private ccache per call
//! (`gss_acquire_cred_from` with a `client_keytab`/`ccache` cred store), but the `libgssapi`
//! crate does not expose that call and wrapping it ourselves means unsafe FFI. krb5.conf has no
//! per-call form at all. So the binary sets `KRB5_CONFIG`, `KRB5_CLIENT_KTNAME` and a
//! `MEMORY:` `KRB5CCNAME` once, before any thread starts ([`process_env`] lists them; setting
//! them from inside a running multi-threaded process is unsound), and [`Spnego::new`] refuses
//! to run when they differ from the configuration. With a client keytab MIT krb5 obtains the
//! TGT on first use and refreshes it itself before it expires, so one credential handle serves
//! every request; we re-acquire only when its remaining lifetime falls under the margin.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures::future::BoxFuture;
use libgssapi::context::{ClientCtx, CtxFlags, SecurityContext as _};
use libgssapi::credential::{Cred, CredUsage};
use libgssapi::name::Name;
use libgssapi::oid::{
    GSS_MECH_KRB5, GSS_MECH_SPNEGO, GSS_NT_HOSTBASED_SERVICE, GSS_NT_KRB5_PRINCIPAL, OidSet,
};

use super::auth::{AuthError, Authenticator, Exchange, MutualCheck};

/// The private in-memory credential cache: never shared with other processes via /tmp.
pub const MEMORY_CCACHE: &str = "MEMORY:kube2hadoop";

#[derive(Debug, Clone)]
pub struct KerberosConfig {
    /// e.g. `kube2hadoop/host@EXAMPLE.COM`
    pub principal: String,
    pub keytab: PathBuf,
    /// `None` keeps the system default (`/etc/krb5.conf`).
    pub krb5_conf: Option<PathBuf>,
    /// Re-acquire the credential when less than this lifetime remains.
    pub refresh_margin: Duration,
}

/// The environment the process must start with for `cfg` (see the module comment).
pub fn process_env(cfg: &KerberosConfig) -> Vec<(&'static str, OsString)> {
    let mut env = vec![
        ("KRB5_CLIENT_KTNAME", cfg.keytab.clone().into_os_string()),
        ("KRB5CCNAME", OsString::from(MEMORY_CCACHE)),
    ];
    if let Some(conf) = &cfg.krb5_conf {
        env.push(("KRB5_CONFIG", conf.clone().into_os_string()));
    }
    env
}

/// Checks the running process has [`process_env`], reading variables through `get`
/// (tests pass a map instead of touching the real environment).
pub fn check_env(
    cfg: &KerberosConfig,
    get: impl Fn(&str) -> Option<OsString>,
) -> Result<(), AuthError> {
    for (var, expected) in process_env(cfg) {
        let found = get(var);
        if found.as_ref() != Some(&expected) {
            return Err(AuthError::Environment {
                var,
                expected: expected.to_string_lossy().into_owned(),
                found: found.map(|f| f.to_string_lossy().into_owned()),
            });
        }
    }
    Ok(())
}

/// Authenticates as the configured principal. Clones share one credential and counter.
#[derive(Clone)]
pub struct Spnego(Arc<Inner>);

struct Inner {
    cfg: KerberosConfig,
    cred: Mutex<Option<Cred>>,
    acquisitions: AtomicU64,
}

impl std::fmt::Debug for Spnego {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spnego")
            .field("principal", &self.0.cfg.principal)
            .field("acquisitions", &self.acquisitions())
            .finish_non_exhaustive()
    }
}

impl Spnego {
    pub fn new(cfg: KerberosConfig) -> Result<Spnego, AuthError> {
        check_env(&cfg, |v| std::env::var_os(v))?;
        Ok(Spnego(Arc::new(Inner {
            cfg,
            cred: Mutex::new(None),
            acquisitions: AtomicU64::new(0),
        })))
    }

    /// How many times a Kerberos credential was acquired (for metrics).
    pub fn acquisitions(&self) -> u64 {
        self.0.acquisitions.load(Ordering::Relaxed)
    }

    /// The service's credential, shared with protocols other than HTTP (the metastore's SASL).
    /// Blocking: it may talk to the KDC.
    pub fn credential(&self) -> Result<Cred, AuthError> {
        self.0.credential()
    }

    /// A GSSAPI failure while talking to `server`, typed as for SPNEGO.
    pub fn classify(
        &self,
        step: &'static str,
        server: &str,
        e: libgssapi::error::Error,
    ) -> AuthError {
        classify(&self.0.cfg, step, server, e)
    }
}

impl Inner {
    /// The cached credential, or a new one when it is missing or close to expiry. Blocking.
    fn credential(&self) -> Result<Cred, AuthError> {
        let mut slot = self
            .cred
            .lock()
            .map_err(|_| AuthError::Worker("credential lock poisoned".into()))?;
        if let Some(cred) = slot.as_ref() {
            match cred.lifetime() {
                Ok(left) if left > self.cfg.refresh_margin => return Ok(cred.clone()),
                _ => {}
            }
        }
        let name = Name::new(self.cfg.principal.as_bytes(), Some(GSS_NT_KRB5_PRINCIPAL))
            .map_err(|e| self.classify("importing the principal name", "", e))?;
        let mut mechs = OidSet::new();
        mechs
            .add(GSS_MECH_KRB5)
            .map_err(|e| self.classify("mechanism set", "", e))?;
        let cred = Cred::acquire(Some(&name), None, CredUsage::Initiate, Some(&mechs))
            .map_err(|e| self.classify("acquiring credentials from the keytab", "", e))?;
        self.acquisitions.fetch_add(1, Ordering::Relaxed);
        tracing::info!(principal = %self.cfg.principal, "acquired Kerberos credentials");
        *slot = Some(cred.clone());
        Ok(cred)
    }

    /// Blocking: first SPNEGO token for `HTTP@host`.
    fn initiate(&self, host: &str) -> Result<Exchange, AuthError> {
        let cred = self.credential()?;
        let target = Name::new(
            format!("HTTP@{host}").as_bytes(),
            Some(GSS_NT_HOSTBASED_SERVICE),
        )
        .map_err(|e| self.classify("naming the server", host, e))?;
        let mut ctx = ClientCtx::new(
            Some(cred),
            target,
            CtxFlags::GSS_C_MUTUAL_FLAG,
            Some(GSS_MECH_SPNEGO),
        );
        let token = ctx
            .step(None, None)
            .map_err(|e| self.classify("creating the SPNEGO token", host, e))?
            .ok_or_else(|| AuthError::Gss {
                step: "creating the SPNEGO token",
                detail: "GSSAPI produced no token".into(),
            })?;
        let authorization = format!("Negotiate {}", STANDARD.encode(&*token));
        let mutual: Option<Box<dyn MutualCheck>> = if ctx.is_complete() {
            None
        } else {
            Some(Box::new(PendingContext {
                ctx,
                host: host.to_owned(),
            }))
        };
        Ok(Exchange {
            authorization,
            mutual,
        })
    }

    fn classify(&self, step: &'static str, host: &str, e: libgssapi::error::Error) -> AuthError {
        classify(&self.cfg, step, host, e)
    }
}

fn classify(
    cfg: &KerberosConfig,
    step: &'static str,
    host: &str,
    e: libgssapi::error::Error,
) -> AuthError {
    // krb5 minor codes (krb5.h); the `as i32` reinterprets GSSAPI's unsigned minor status.
    const KDC_UNREACH: i32 = -1765328228;
    const TKT_EXPIRED: i32 = -1765328352;
    const REALM_CANT_RESOLVE: i32 = -1765328164;
    const AP_ERR_SKEW: i32 = -1765328347;
    const KDCREP_SKEW: i32 = -1765328236;
    const S_PRINCIPAL_UNKNOWN: i32 = -1765328377;
    const C_PRINCIPAL_UNKNOWN: i32 = -1765328378;
    const KT_NOTFOUND: i32 = -1765328203;
    const KT_KVNONOTFOUND: i32 = -1765328154;
    const PREAUTH_FAILED: i32 = -1765328360;
    const CONFIG_CANTOPEN: i32 = -1765328249;
    const ENOENT: i32 = 2;
    let principal = cfg.principal.clone();
    match e.minor as i32 {
        KDC_UNREACH | REALM_CANT_RESOLVE => AuthError::KdcUnreachable { principal },
        TKT_EXPIRED => AuthError::TicketExpired { principal },
        AP_ERR_SKEW | KDCREP_SKEW => AuthError::ClockSkew,
        S_PRINCIPAL_UNKNOWN => AuthError::ServerUnknown { host: host.into() },
        C_PRINCIPAL_UNKNOWN => AuthError::ClientUnknown { principal },
        KT_NOTFOUND | KT_KVNONOTFOUND | PREAUTH_FAILED | ENOENT => AuthError::Keytab {
            principal,
            keytab: cfg.keytab.display().to_string(),
        },
        CONFIG_CANTOPEN => AuthError::Krb5Config,
        // Through SPNEGO, MIT's mechglue hands back a *mapped* minor code, not krb5's own:
        // recognise the two outage cases by krb5's message text instead.
        _ => {
            let detail = e.to_string();
            if detail.contains("Ticket expired") {
                AuthError::TicketExpired { principal }
            } else if detail.contains("Cannot contact any KDC") {
                AuthError::KdcUnreachable { principal }
            } else {
                AuthError::Gss { step, detail }
            }
        }
    }
}

struct PendingContext {
    ctx: ClientCtx,
    host: String,
}

impl MutualCheck for PendingContext {
    fn verify(mut self: Box<Self>, server_token: &[u8]) -> Result<(), AuthError> {
        match self.ctx.step(Some(server_token), None) {
            Ok(None) => Ok(()),
            Ok(Some(_)) if self.ctx.is_complete() => Ok(()),
            Ok(Some(_)) => Err(AuthError::Mutual {
                host: self.host,
                detail: "the server wants another round, which HTTP SPNEGO does not have".into(),
            }),
            Err(e) => Err(AuthError::Mutual {
                host: self.host,
                detail: e.to_string(),
            }),
        }
    }
}

impl Authenticator for Spnego {
    fn start<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Option<Exchange>, AuthError>> {
        let this = Arc::clone(&self.0);
        let host = host.to_owned();
        Box::pin(async move {
            // GSSAPI may talk to the KDC: keep it off the async workers.
            tokio::task::spawn_blocking(move || this.initiate(&host))
                .await
                .map_err(|e| AuthError::Worker(e.to_string()))?
                .map(Some)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn cfg() -> KerberosConfig {
        KerberosConfig {
            principal: "kube2hadoop/localhost@EXAMPLE.COM".into(),
            keytab: "/etc/k2h/svc.keytab".into(),
            krb5_conf: Some("/etc/k2h/krb5.conf".into()),
            refresh_margin: Duration::from_secs(300),
        }
    }

    #[test]
    fn env_check_accepts_exactly_the_planned_environment() {
        let env: HashMap<&str, OsString> = process_env(&cfg()).into_iter().collect();
        check_env(&cfg(), |v| env.get(v).cloned()).expect("planned env accepted");
    }

    #[test]
    fn env_check_names_the_wrong_variable() {
        let mut env: HashMap<&str, OsString> = process_env(&cfg()).into_iter().collect();
        env.insert("KRB5CCNAME", "FILE:/tmp/krb5cc_0".into());
        let err = check_env(&cfg(), |v| env.get(v).cloned()).expect_err("shared ccache refused");
        let text = err.to_string();
        assert!(text.contains("KRB5CCNAME"), "{text}");
        assert!(text.contains(MEMORY_CCACHE), "{text}");
    }

    #[test]
    fn krb5_minor_codes_become_admin_errors() {
        let e = |minor: i32| libgssapi::error::Error {
            major: libgssapi::error::MajorFlags::GSS_S_FAILURE,
            minor: minor as u32,
        };
        assert!(matches!(
            classify(&cfg(), "s", "nn", e(-1765328228)),
            AuthError::KdcUnreachable { .. }
        ));
        assert!(matches!(
            classify(&cfg(), "s", "nn", e(-1765328347)),
            AuthError::ClockSkew
        ));
        let unknown = classify(&cfg(), "s", "nn.example", e(-1765328377));
        assert!(unknown.to_string().contains("HTTP/nn.example"), "{unknown}");
        let expired = classify(&cfg(), "s", "nn", e(-1765328352));
        assert!(
            matches!(expired, AuthError::TicketExpired { .. }) && expired.is_transient(),
            "{expired:?}"
        );
        assert!(expired.to_string().contains("KDC"), "{expired}");
        let kt = classify(&cfg(), "s", "nn", e(-1765328203)).to_string();
        assert!(kt.contains("/etc/k2h/svc.keytab"), "{kt}");
    }
}
