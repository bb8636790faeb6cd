//! The outbound policy: which addresses the server may connect to when a user names the target
//! (SLI provider URLs, Prometheus, push integrations, git upstreams).
//!
//! keptn's webhook-service keeps a deny-list of host names; names can be aliased, so here the
//! check is on the *resolved address* of every connection. Denied by default: unspecified,
//! loopback, link-local, cloud metadata, multicast and reserved addresses, and (configurable)
//! private ranges. IPv6 forms that embed an IPv4 address (mapped, NAT64, 6to4, Teredo) are judged
//! by the embedded address. Operators who need internal targets allow them explicitly
//! (`--allow-outbound loopback|private|<CIDR>`); an allowed range overrides every class.
//!
//! The core ([`OutboundPolicy::check`]) is pure; [`OutboundPolicy::resolve`] is the one blocking
//! shell (for libgit2 callers); the HTTP shell is [`http`] (feature
//! `http`): the one reqwest client, shared by the server's push delivery and the SLI providers.

#[cfg(feature = "http")]
pub mod http;

use ipnet::IpNet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

/// Where user-supplied URLs may connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundPolicy {
    /// Allowed whatever their class.
    allow: Vec<IpNet>,
    /// Private ranges (RFC 1918, CGNAT, unique-local) are denied too.
    deny_private: bool,
}

impl Default for OutboundPolicy {
    /// Denies loopback, link-local, metadata and private targets.
    fn default() -> Self {
        OutboundPolicy { allow: Vec::new(), deny_private: true }
    }
}

/// Why an address is not a public unicast one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Unspecified,
    Loopback,
    LinkLocal,
    Metadata,
    Private,
    Multicast,
    Reserved,
}

impl Class {
    fn describe(self) -> &'static str {
        match self {
            Class::Unspecified => "an unspecified (this-host) address",
            Class::Loopback => "a loopback address",
            Class::LinkLocal => "a link-local address",
            Class::Metadata => "a cloud metadata address",
            Class::Private => "a private address",
            Class::Multicast => "a multicast address",
            Class::Reserved => "a reserved address",
        }
    }
}

/// A connection the policy refuses: the address and its class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denied {
    pub ip: IpAddr,
    pub class: Class,
}

impl Denied {
    /// What to do about it.
    fn tail(&self) -> String {
        let allow = match self.class {
            Class::Loopback => "loopback".to_string(),
            Class::Private => "private".to_string(),
            _ => IpNet::from(self.ip).to_string(),
        };
        format!(
            "which the server's outbound policy denies; if this target is intended, start the server with --allow-outbound {allow}"
        )
    }
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is {}, {}", self.ip, self.class.describe(), self.tail())
    }
}

impl std::error::Error for Denied {}

/// Why a host could not be used: denied, or not resolvable at all.
#[derive(Debug)]
pub enum Refused {
    Denied { host: String, denied: Denied },
    Unresolvable { host: String, error: std::io::Error },
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Denied { host, denied } if host.parse::<IpAddr>().is_ok() => write!(f, "{denied}"),
            Refused::Denied { host, denied } => {
                write!(f, "{host} resolves to {}, {}, {}", denied.ip, denied.class.describe(), denied.tail())
            }
            Refused::Unresolvable { host, error } => write!(f, "cannot resolve {host}: {error}"),
        }
    }
}

impl std::error::Error for Refused {}

impl OutboundPolicy {
    /// The policy for `--allow-outbound` values: `loopback`, `private`, or an address or CIDR
    /// (`10.1.0.0/16`, `fd00::/8`, `192.168.1.5`).
    pub fn allowing<S: AsRef<str>>(items: &[S]) -> Result<Self, String> {
        let mut policy = OutboundPolicy::default();
        for item in items.iter().map(|s| s.as_ref().trim()).filter(|s| !s.is_empty()) {
            match item {
                "loopback" => policy.allow.extend(["127.0.0.0/8", "::1/128"].map(|n| n.parse::<IpNet>().unwrap())),
                "private" => policy.deny_private = false,
                net => policy.allow.push(parse_net(net)?),
            }
        }
        Ok(policy)
    }

    /// The default plus loopback: what tests need for their servers on 127.0.0.1.
    pub fn allow_loopback() -> Self {
        Self::allowing(&["loopback"]).expect("valid")
    }

    /// Whether the server may connect to `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), Denied> {
        let embedded = embedded_v4(ip);
        let allowed = |ip: IpAddr| self.allow.iter().any(|n| n.contains(&ip));
        if allowed(ip) || embedded.is_some_and(|v4| allowed(IpAddr::V4(v4))) {
            return Ok(());
        }
        let class = match (embedded, ip) {
            (Some(v4), _) => class_v4(v4),
            (None, IpAddr::V4(v4)) => class_v4(v4),
            (None, IpAddr::V6(v6)) => class_v6(v6),
        };
        match class {
            None => Ok(()),
            Some(Class::Private) if !self.deny_private => Ok(()),
            Some(class) => Err(Denied { ip, class }),
        }
    }

    /// Resolves `host` (a name, an IP literal, or a bracketed IPv6 literal) and keeps the
    /// addresses the policy allows. Blocking (`getaddrinfo`): for synchronous callers.
    pub fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Refused> {
        let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => (bare, port)
                .to_socket_addrs()
                .map_err(|error| Refused::Unresolvable { host: host.into(), error })?
                .collect(),
        };
        self.filter(host, addrs)
    }

    /// The allowed ones of `addrs` (what `host` resolved to); none allowed is an error naming
    /// the first denied address.
    pub fn filter(&self, host: &str, addrs: impl IntoIterator<Item = SocketAddr>) -> Result<Vec<SocketAddr>, Refused> {
        let mut first_denied = None;
        let mut ok = Vec::new();
        for addr in addrs {
            match self.check(addr.ip()) {
                Ok(()) => ok.push(addr),
                Err(d) => first_denied = first_denied.or(Some(d)),
            }
        }
        match (ok.is_empty(), first_denied) {
            (true, Some(denied)) => Err(Refused::Denied { host: host.into(), denied }),
            (true, None) => Err(Refused::Unresolvable {
                host: host.into(),
                error: std::io::Error::new(std::io::ErrorKind::NotFound, "no addresses"),
            }),
            (false, _) => Ok(ok),
        }
    }
}

fn parse_net(text: &str) -> Result<IpNet, String> {
    let net = match text.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => text.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
            format!("--allow-outbound {text:?} must be loopback, private, an IP address or a CIDR such as 10.0.0.0/8")
        })?,
    };
    Ok(net.trunc())
}

/// The IPv4 address an IPv6 one stands for: IPv4-mapped (`::ffff:a.b.c.d`), NAT64's well-known
/// prefix (`64:ff9b::/96`), 6to4 (`2002:AABB:CCDD::/48`) and Teredo's client (`2001::/32`).
fn embedded_v4(ip: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = ip else { return None };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        [0x2002, a, b, ..] => Some(Ipv4Addr::new((a >> 8) as u8, a as u8, (b >> 8) as u8, b as u8)),
        [0x2001, 0, ..] => Some(Ipv4Addr::from(!u32::from(low))),
        _ => None,
    }
}

/// Metadata services reached without DNS: AWS/GCP/Azure/OpenStack (and AWS ECS's task
/// endpoint), Alibaba Cloud, Oracle Cloud.
const METADATA_V4: [Ipv4Addr; 4] = [
    Ipv4Addr::new(169, 254, 169, 254),
    Ipv4Addr::new(169, 254, 170, 2),
    Ipv4Addr::new(100, 100, 100, 200),
    Ipv4Addr::new(192, 0, 0, 192),
];
/// AWS's IPv6 metadata endpoint.
const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

fn class_v4(ip: Ipv4Addr) -> Option<Class> {
    let [a, b, ..] = ip.octets();
    Some(match () {
        _ if METADATA_V4.contains(&ip) => Class::Metadata,
        _ if a == 0 => Class::Unspecified,
        _ if ip.is_loopback() => Class::Loopback,
        _ if ip.is_link_local() => Class::LinkLocal,
        // RFC 1918, CGNAT 100.64/10, IETF protocol assignments 192.0.0/24, benchmarking 198.18/15.
        _ if ip.is_private() || (a == 100 && (64..128).contains(&b)) => Class::Private,
        _ if (a, b, ip.octets()[2]) == (192, 0, 0) || (a == 198 && (b == 18 || b == 19)) => Class::Private,
        _ if ip.is_multicast() => Class::Multicast,
        _ if a >= 240 => Class::Reserved, // 240/4 and the broadcast address
        _ => return None,
    })
}

fn class_v6(ip: Ipv6Addr) -> Option<Class> {
    let s = ip.segments();
    Some(match () {
        _ if ip == METADATA_V6 => Class::Metadata,
        _ if ip.is_unspecified() => Class::Unspecified,
        _ if ip.is_loopback() => Class::Loopback,
        _ if ip.is_unicast_link_local() => Class::LinkLocal,
        _ if ip.is_multicast() => Class::Multicast,
        // Unique-local fc00::/7, deprecated site-local fec0::/10, local-use NAT64 64:ff9b:1::/48.
        _ if ip.is_unique_local() || (s[0] & 0xffc0) == 0xfec0 || s[..3] == [0x64, 0xff9b, 1] => Class::Private,
        // Deprecated IPv4-compatible ::/96 and the discard prefix 100::/64.
        _ if s[..6] == [0; 6] || s[..4] == [0x100, 0, 0, 0] => Class::Reserved,
        _ => return None,
    })
}

/// A URL without its userinfo: `("scheme://", "host/…")` for `scheme://user:pw@host/…`;
/// `None` when the authority has no `@` (an `@` in the path or query does not count).
fn split_userinfo(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = rest[..authority_end].rfind('@')?;
    Some((&url[..scheme.len() + 3], &rest[at + 1..]))
}

/// `http://user:pass@host/x` → `http://***@host/x`: the form messages, logs and API answers
/// show. URLs without userinfo are unchanged.
pub fn redact_url(url: &str) -> String {
    split_userinfo(url).map_or_else(|| url.into(), |(scheme, rest)| format!("{scheme}***@{rest}"))
}

/// `https://user:token@host/x` → `https://host/x`: the URL with its userinfo left out.
pub fn strip_userinfo(url: &str) -> String {
    split_userinfo(url).map_or_else(|| url.into(), |(scheme, rest)| format!("{scheme}{rest}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(policy: &OutboundPolicy, ip: &str) -> Option<Class> {
        policy.check(ip.parse().unwrap()).err().map(|d| d.class)
    }

    #[test]
    fn the_default_denies_every_internal_form() {
        let p = OutboundPolicy::default();
        let cases = [
            ("0.0.0.0", Class::Unspecified),
            ("0.1.2.3", Class::Unspecified),
            ("::", Class::Unspecified),
            ("127.0.0.1", Class::Loopback),
            ("127.255.0.9", Class::Loopback),
            ("::1", Class::Loopback),
            ("169.254.169.254", Class::Metadata),
            ("::ffff:169.254.169.254", Class::Metadata),
            ("64:ff9b::a9fe:a9fe", Class::Metadata),
            ("fd00:ec2::254", Class::Metadata),
            ("100.100.100.200", Class::Metadata),
            ("169.254.1.1", Class::LinkLocal),
            ("fe80::1", Class::LinkLocal),
            ("10.0.0.1", Class::Private),
            ("172.16.5.4", Class::Private),
            ("192.168.1.1", Class::Private),
            ("100.64.0.1", Class::Private),
            ("198.18.0.1", Class::Private),
            ("fd12:3456::1", Class::Private),
            ("::ffff:10.0.0.1", Class::Private),
            ("::ffff:127.0.0.1", Class::Loopback),
            ("2002:7f00:1::", Class::Loopback),         // 6to4 of 127.0.0.1
            ("2001:0:1:2::80ff:fffe", Class::Loopback), // Teredo client 127.0.0.1
            ("224.0.0.1", Class::Multicast),
            ("ff02::1", Class::Multicast),
            ("255.255.255.255", Class::Reserved),
            ("240.0.0.1", Class::Reserved),
            ("::7f00:1", Class::Reserved),
        ];
        for (ip, want) in cases {
            assert_eq!(class(&p, ip), Some(want), "{ip}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        let p = OutboundPolicy::default();
        for ip in ["8.8.8.8", "100.128.0.1", "172.32.0.1", "2606:4700::1111", "::ffff:1.1.1.1", "64:ff9b::808:808"] {
            assert_eq!(class(&p, ip), None, "{ip}");
        }
    }

    #[test]
    fn allow_entries_override_their_class_only() {
        let p = OutboundPolicy::allow_loopback();
        assert_eq!(class(&p, "127.0.0.1"), None);
        assert_eq!(class(&p, "::1"), None);
        assert_eq!(class(&p, "::ffff:127.0.0.1"), None);
        assert_eq!(class(&p, "169.254.169.254"), Some(Class::Metadata));
        assert_eq!(class(&p, "10.0.0.1"), Some(Class::Private));

        let p = OutboundPolicy::allowing(&["private"]).unwrap();
        assert_eq!(class(&p, "10.0.0.1"), None);
        assert_eq!(class(&p, "fd12::1"), None);
        assert_eq!(class(&p, "fd00:ec2::254"), Some(Class::Metadata), "metadata stays denied");
        assert_eq!(class(&p, "127.0.0.1"), Some(Class::Loopback));

        let p = OutboundPolicy::allowing(&["10.1.0.0/16", "169.254.169.254", " "]).unwrap();
        assert_eq!(class(&p, "10.1.2.3"), None);
        assert_eq!(class(&p, "10.2.0.1"), Some(Class::Private));
        assert_eq!(class(&p, "169.254.169.254"), None);
        assert_eq!(class(&p, "::ffff:10.1.2.3"), None);
    }

    #[test]
    fn bad_allow_entries_say_what_is_accepted() {
        let err = OutboundPolicy::allowing(&["internal"]).unwrap_err();
        assert_eq!(
            err,
            r#"--allow-outbound "internal" must be loopback, private, an IP address or a CIDR such as 10.0.0.0/8"#
        );
    }

    #[test]
    fn messages_name_the_address_and_the_flag() {
        let p = OutboundPolicy::default();
        let loopback = p.check("127.0.0.1".parse().unwrap()).unwrap_err().to_string();
        assert_eq!(
            loopback,
            "127.0.0.1 is a loopback address, which the server's outbound policy denies; if this target is intended, start the server with --allow-outbound loopback"
        );
        let metadata = p.check("169.254.169.254".parse().unwrap()).unwrap_err().to_string();
        assert!(metadata.ends_with("--allow-outbound 169.254.169.254/32"), "{metadata}");
    }

    #[test]
    fn resolve_checks_literals_and_names() {
        let p = OutboundPolicy::default();
        assert!(matches!(p.resolve("127.0.0.1", 80), Err(Refused::Denied { .. })));
        assert!(matches!(p.resolve("[::1]", 80), Err(Refused::Denied { .. })));
        let named = p.resolve("localhost", 80).unwrap_err().to_string();
        assert!(named.starts_with("localhost resolves to "), "{named}");
        assert!(named.contains(", a loopback address, which the server's outbound policy denies"), "{named}");
        let ok = OutboundPolicy::allow_loopback().resolve("localhost", 8080).unwrap();
        assert!(ok.iter().all(|a| a.ip().is_loopback() && a.port() == 8080));
    }
}
