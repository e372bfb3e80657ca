//! Name resolution for outgoing HTTP. The host resolves, checks every address against
//! the grant, then connects to a checked address itself: the name is never handed to a
//! second lookup that could answer differently (DNS rebinding).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;

/// A resolution in progress.
pub type ResolveFuture<'a> = Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'a>>;

/// Turns a host name into addresses.
pub trait Resolver: Send + Sync {
    /// Every address `host` resolves to.
    fn resolve<'a>(&'a self, host: &'a str) -> ResolveFuture<'a>;
}

/// The operating system's resolver (`/etc/hosts`, then DNS).
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve<'a>(&'a self, host: &'a str) -> ResolveFuture<'a> {
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host, 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// Fixed answers for chosen names, like curl's `--resolve`: for split-horizon setups
/// and for tests that must never leave loopback. Other names go to `fallback`, if any.
pub struct StaticResolver {
    answers: HashMap<String, Vec<IpAddr>>,
    fallback: Option<Box<dyn Resolver>>,
}

impl StaticResolver {
    /// Answers only for the given names; any other name does not resolve.
    pub fn new(answers: impl IntoIterator<Item = (String, Vec<IpAddr>)>) -> Self {
        Self {
            answers: answers
                .into_iter()
                .map(|(h, a)| (h.to_ascii_lowercase(), a))
                .collect(),
            fallback: None,
        }
    }

    /// Names without a fixed answer go to `fallback`.
    pub fn with_fallback(mut self, fallback: impl Resolver + 'static) -> Self {
        self.fallback = Some(Box::new(fallback));
        self
    }
}

impl Resolver for StaticResolver {
    fn resolve<'a>(&'a self, host: &'a str) -> ResolveFuture<'a> {
        if let Some(addrs) = self.answers.get(&host.to_ascii_lowercase()) {
            let addrs = addrs.clone();
            return Box::pin(async move { Ok(addrs) });
        }
        match &self.fallback {
            Some(fallback) => fallback.resolve(host),
            None => Box::pin(async move {
                Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("`{host}` has no configured address"),
                ))
            }),
        }
    }
}
