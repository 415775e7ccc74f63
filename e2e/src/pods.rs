//! Pods as a token client sees them: running, with an IP, and connections made *from* that IP.
//! On the local bed pod IPs are loopback addresses (127.100.0.0/16), so this process can bind a
//! socket to a pod's IP and a server sees the pod as the peer.
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};
use tokio::net::{TcpSocket, TcpStream};

use crate::wait::{self, Poll};
use crate::{Error, KubeStep};

/// Wait until the pod is Running and has an IP; returns the pod and its IP.
pub async fn running(
    client: &Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<(Pod, IpAddr), Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let what = format!("pod {namespace}/{name} to be Running with an IP");
    wait::until(&what, timeout, || async {
        let pod = api
            .get(name)
            .await
            .step(format!("reading pod {namespace}/{name}"))?;
        let status = pod.status.as_ref();
        let phase = status.and_then(|s| s.phase.clone()).unwrap_or_default();
        let ip = status
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse::<IpAddr>().ok());
        Ok::<_, Error>(match ip {
            Some(ip) if phase == "Running" => Poll::Ready((pod, ip)),
            _ => Poll::Pending(format!("phase {phase:?}, ip {ip:?}")),
        })
    })
    .await
}

/// Open a TCP connection to `to` whose source address is `from` (a pod's IP on the local bed).
pub async fn connect_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = if from.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(to).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connects_from_a_loopback_alias() -> std::io::Result<()> {
        // Linux routes all of 127/8 to lo: any address in it works as a source.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let to = listener.local_addr()?;
        let from: IpAddr = "127.100.7.9".parse().map_err(std::io::Error::other)?;
        let (_client, accepted) = tokio::join!(connect_from(from, to), listener.accept());
        assert_eq!(accepted?.1.ip(), from);
        Ok(())
    }
}
