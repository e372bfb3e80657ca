//! HTTP destinations: host patterns, `scheme://host[:port]` rules with methods, and the
//! address ranges a plugin never reaches unless a private network is granted.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::LazyLock;

use ipnet::IpNet;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A host name (`api.example.com`), an IP literal (`127.0.0.1`, `::1`), or a wildcard
/// over the subdomains of a name (`*.example.com`: `a.example.com`, not `example.com`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum HostPattern {
    /// Exactly this host (lowercase).
    Exact(String),
    /// Any host ending in `.` + this suffix.
    Subdomains(String),
}

impl HostPattern {
    /// Whether `host` (as written in a request URI) matches.
    pub fn matches(&self, host: &str) -> bool {
        let host = normalize_host(host);
        match self {
            Self::Exact(h) => *h == host,
            Self::Subdomains(suffix) => is_subdomain(&host, suffix),
        }
    }

    /// Whether every host this pattern matches is also matched by `self`.
    pub fn covers(&self, other: &HostPattern) -> bool {
        match (self, other) {
            (Self::Exact(a), Self::Exact(b)) => a == b,
            (Self::Exact(_), Self::Subdomains(_)) => false,
            (Self::Subdomains(s), Self::Exact(h)) => is_subdomain(h, s),
            (Self::Subdomains(s), Self::Subdomains(t)) => t == s || is_subdomain(t, s),
        }
    }

    /// Whether some host matches both patterns.
    pub fn overlaps(&self, other: &HostPattern) -> bool {
        self.covers(other) || other.covers(self)
    }
}

fn is_subdomain(host: &str, suffix: &str) -> bool {
    host.len() > suffix.len() + 1
        && host.ends_with(suffix)
        && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
}

/// Lowercase, without IPv6 brackets or a trailing dot.
fn normalize_host(host: &str) -> String {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.trim_end_matches('.').to_ascii_lowercase()
}

impl FromStr for HostPattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lowered = normalize_host(s);
        if let Some(suffix) = lowered.strip_prefix("*.") {
            check_dns_name(suffix)?;
            if !suffix.contains('.') {
                return Err(format!(
                    "`{s}`: a wildcard must stand for subdomains of a registered name, e.g. `*.example.com`"
                ));
            }
            return Ok(Self::Subdomains(suffix.to_owned()));
        }
        if lowered.parse::<IpAddr>().is_ok() {
            return Ok(Self::Exact(lowered));
        }
        check_dns_name(&lowered).map_err(|e| format!("`{s}`: {e}"))?;
        Ok(Self::Exact(lowered))
    }
}

fn check_dns_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err("a host name has 1 to 253 characters".into());
    }
    for label in name.split('.') {
        let valid = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(format!(
                "`{label}` is not a valid host label (letters, digits, inner hyphens; 1-63 characters)"
            ));
        }
    }
    Ok(())
}

impl TryFrom<String> for HostPattern {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<HostPattern> for String {
    fn from(p: HostPattern) -> String {
        p.to_string()
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(h) if h.contains(':') => write!(f, "[{h}]"),
            Self::Exact(h) => f.write_str(h),
            Self::Subdomains(s) => write!(f, "*.{s}"),
        }
    }
}

impl JsonSchema for HostPattern {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "HostPattern".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A host name, an IP literal, or `*.` + a name for its subdomains.",
            "examples": ["api.example.com", "*.example.com", "127.0.0.1"]
        })
    }
}

/// URI schemes a plugin may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

impl Scheme {
    /// The port used when a URI names none.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Http => "http",
            Self::Https => "https",
        })
    }
}

/// HTTP methods a rule may allow.
pub const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// One allowed HTTP destination: scheme, host pattern, port and methods.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HttpRule {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Which hosts.
    pub host: HostPattern,
    /// Which port (the scheme's default when the URL names none).
    pub port: u16,
    /// Allowed methods, uppercase, never empty.
    pub methods: Vec<String>,
}

impl HttpRule {
    /// Parses `scheme://host[:port]` (nothing after the authority) and checks the methods.
    pub fn parse(url: &str, methods: &[String]) -> Result<Self, String> {
        let (scheme, authority) = url
            .split_once("://")
            .ok_or_else(|| format!("`{url}` is not `scheme://host[:port]`"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => return Err(format!("scheme `{other}` is not http or https")),
        };
        if authority.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "`{url}`: give only scheme, host and port (no path, query or user info)"
            ));
        }
        let (host, port) = split_host_port(authority)?;
        let host: HostPattern = host.parse()?;
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("`{p}` is not a port number"))?,
            None => scheme.default_port(),
        };
        if methods.is_empty() {
            return Err("`methods` is empty: list the methods the plugin uses".into());
        }
        let mut checked = Vec::with_capacity(methods.len());
        for m in methods {
            let upper = m.to_ascii_uppercase();
            if !METHODS.contains(&upper.as_str()) {
                return Err(format!("method `{m}` is not one of {}", METHODS.join(", ")));
            }
            if !checked.contains(&upper) {
                checked.push(upper);
            }
        }
        Ok(Self {
            scheme,
            host,
            port,
            methods: checked,
        })
    }

    /// The rule's destination as `scheme://host:port`.
    pub fn url(&self) -> String {
        format!("{}://{}:{}", self.scheme, self.host, self.port)
    }

    /// Whether this rule allows `method` on `scheme://host:port`.
    pub fn allows(&self, scheme: Scheme, host: &str, port: u16, method: &str) -> bool {
        self.scheme == scheme
            && self.port == port
            && self.host.matches(host)
            && self.methods.iter().any(|m| m.eq_ignore_ascii_case(method))
    }
}

impl fmt::Display for HttpRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.url(), self.methods.join(", "))
    }
}

fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("`{authority}`: unclosed `[`"))?;
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err(format!("`{authority}`: expected `:port` after `]`")),
            },
        };
    }
    Ok(match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    })
}

/// Non-public ranges and why each is refused, parsed once.
static NON_PUBLIC: LazyLock<Vec<(IpNet, &'static str)>> = LazyLock::new(|| {
    [
        ("0.0.0.0/8", "unspecified"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local (cloud metadata)"),
        ("10.0.0.0/8", "private"),
        ("172.16.0.0/12", "private"),
        ("192.168.0.0/16", "private"),
        ("100.64.0.0/10", "carrier-grade NAT"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.0.2.0/24", "documentation"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("fe80::/10", "link-local"),
        ("fc00::/7", "unique local (private, cloud metadata)"),
        ("64:ff9b::/96", "NAT64 (embeds an IPv4 address)"),
        ("2001:db8::/32", "documentation"),
        ("ff00::/8", "multicast"),
    ]
    .into_iter()
    .filter_map(|(net, why)| Some((net.parse().ok()?, why)))
    .collect()
});

/// Why an address is not public, or `None` for a public unicast address. Plugins reach
/// such addresses only through a granted private network: this is what stops a granted
/// name that resolves to 127.0.0.1 or 169.254.169.254 (DNS rebinding, metadata theft).
pub fn non_public_range(ip: IpAddr) -> Option<&'static str> {
    // An IPv4-mapped IPv6 address reaches the IPv4 host: judge that one.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    NON_PUBLIC
        .iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|(_, why)| *why)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> HostPattern {
        s.parse().unwrap()
    }

    #[test]
    fn wildcards_cover_subdomains_only() {
        assert!(p("*.example.com").matches("a.example.com"));
        assert!(p("*.example.com").matches("A.B.Example.COM."));
        assert!(!p("*.example.com").matches("example.com"));
        assert!(!p("*.example.com").matches("badexample.com"));
        assert!(p("*.example.com").covers(&p("*.api.example.com")));
        assert!(!p("api.example.com").covers(&p("*.example.com")));
        assert!(p("*.example.com").overlaps(&p("x.example.com")));
        assert!(!p("a.example.com").overlaps(&p("b.example.com")));
    }

    #[test]
    fn bad_patterns_are_rejected() {
        for bad in [
            "",
            "*.com",
            "exa mple.com",
            "-a.com",
            "a..com",
            "*.*.com",
            "é.com",
        ] {
            assert!(bad.parse::<HostPattern>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn rules_parse_scheme_host_port_methods() {
        let r = HttpRule::parse("https://API.example.com", &["get".into()]).unwrap();
        assert_eq!(r.url(), "https://api.example.com:443");
        assert!(r.allows(Scheme::Https, "api.example.com", 443, "GET"));
        assert!(!r.allows(Scheme::Https, "api.example.com", 443, "POST"));
        assert!(!r.allows(Scheme::Http, "api.example.com", 443, "GET"));
        assert!(!r.allows(Scheme::Https, "api.example.com", 8443, "GET"));
        let v6 = HttpRule::parse("http://[::1]:8080", &["GET".into()]).unwrap();
        assert!(v6.allows(Scheme::Http, "[::1]", 8080, "GET"));
        for bad in [
            "ftp://a.com",
            "https://a.com/path",
            "https://u@a.com",
            "a.com",
            "https://a.com:0",
            "https://a.com:99999",
        ] {
            assert!(HttpRule::parse(bad, &["GET".into()]).is_err(), "{bad}");
        }
        assert!(HttpRule::parse("https://a.com", &[]).is_err());
        assert!(HttpRule::parse("https://a.com", &["BREW".into()]).is_err());
    }

    #[test]
    fn non_public_ranges_include_metadata_and_mapped_loopback() {
        for (ip, public) in [
            ("127.0.0.1", false),
            ("169.254.169.254", false),
            ("10.1.2.3", false),
            ("::1", false),
            ("::ffff:127.0.0.1", false),
            ("fd00:ec2::254", false),
            ("93.184.216.34", true),
            ("2606:4700::1111", true),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(non_public_range(ip).is_none(), public, "{ip}");
        }
    }
}
