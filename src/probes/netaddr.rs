//! Connection endpoints the eBPF programs copy out of the target's Go
//! structs (`ebpf/lib/netaddr.h`): a `net.Addr` interface read as if its
//! dynamic type were `*net.TCPAddr`, with that type's runtime address, which
//! is checked here before the bytes are trusted. An endpoint of any other
//! type (a Unix socket, a wrapper) is no endpoint.

use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::symbols::Symbols;

/// `struct gp_tcpaddr`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpAddr {
    pub type_addr: u64,
    pub ip: [u8; 16],
    pub ip_len: u32,
    pub port: u32,
}
const _: () = assert!(size_of::<TcpAddr>() == 32);

/// The Go type an endpoint must have to be read as one.
pub const TCP_ADDR_TYPE: &str = "*net.TCPAddr";

impl TcpAddr {
    /// The endpoint, when its bytes form an address: 4 or 16 IP bytes (an
    /// IPv4-mapped IPv6 address as IPv4, as Go prints it), a port.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        let port = u16::try_from(self.port).ok()?;
        let ip = match self.ip_len {
            4 => IpAddr::V4(Ipv4Addr::new(
                self.ip[0], self.ip[1], self.ip[2], self.ip[3],
            )),
            16 => IpAddr::V6(Ipv6Addr::from(self.ip)).to_canonical(),
            _ => return None,
        };
        Some(SocketAddr::new(ip, port))
    }

    /// The endpoint, after checking with the traced binary's type
    /// descriptors that the `net.Addr` held a `*net.TCPAddr`.
    pub fn checked(&self, pid: u32, symbols: &mut Symbols) -> Option<SocketAddr> {
        if self.type_addr == 0 || self.ip_len == 0 {
            return None;
        }
        let ty = symbols.type_name(pid, self.type_addr)?;
        (ty.name == TCP_ADDR_TYPE)
            .then(|| self.socket_addr())
            .flatten()
    }
}

/// `host:port` as Go's `net.JoinHostPort` writes it (IPv6 in brackets).
pub fn join(addr: &SocketAddr) -> String {
    addr.to_string()
}

/// An address written by Go (`Request.RemoteAddr`, `net.Addr.String()`):
/// `1.2.3.4:80`, `[::1]:80`, `[fe80::1%eth0]:80` (the zone is dropped).
pub fn parse(s: &str) -> Option<SocketAddr> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Some(match a {
            SocketAddr::V6(v6) => SocketAddr::new(v6.ip().to_canonical(), v6.port()),
            v4 => v4,
        });
    }
    let (host, port) = s.rsplit_once(':')?;
    let host = host.strip_prefix('[')?.strip_suffix(']')?;
    let host = host.split_once('%').map_or(host, |(h, _)| h);
    let ip: Ipv6Addr = host.parse().ok()?;
    Some(SocketAddr::new(ip.to_canonical(), port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_from_bytes() {
        let mut a = TcpAddr {
            ip_len: 4,
            port: 50051,
            ..TcpAddr::default()
        };
        a.ip[..4].copy_from_slice(&[127, 0, 0, 1]);
        assert_eq!(
            a.socket_addr(),
            Some("127.0.0.1:50051".parse().expect("addr"))
        );
        // Go's net keeps IPv4 addresses in 16 bytes (::ffff:a.b.c.d).
        let mut m = TcpAddr {
            ip_len: 16,
            port: 80,
            ..TcpAddr::default()
        };
        m.ip[10] = 0xff;
        m.ip[11] = 0xff;
        m.ip[12..].copy_from_slice(&[10, 1, 2, 3]);
        assert_eq!(m.socket_addr(), Some("10.1.2.3:80".parse().expect("addr")));
        let mut v6 = TcpAddr {
            ip_len: 16,
            port: 443,
            ..TcpAddr::default()
        };
        v6.ip[15] = 1;
        assert_eq!(
            v6.socket_addr().map(|a| join(&a)).as_deref(),
            Some("[::1]:443")
        );
        assert_eq!(TcpAddr { ip_len: 5, ..a }.socket_addr(), None);
        assert_eq!(TcpAddr { port: 70000, ..a }.socket_addr(), None);
        // Without the binary's types nothing is trusted.
        let mut symbols = Symbols::new(None);
        assert_eq!(
            TcpAddr {
                type_addr: 0x1000,
                ..a
            }
            .checked(1, &mut symbols),
            None
        );
    }

    #[test]
    fn go_address_strings() {
        assert_eq!(parse("127.0.0.1:5"), Some("127.0.0.1:5".parse().unwrap()));
        assert_eq!(parse("[::1]:5"), Some("[::1]:5".parse().unwrap()));
        assert_eq!(
            parse("[::ffff:127.0.0.1]:5"),
            Some("127.0.0.1:5".parse().unwrap())
        );
        assert_eq!(
            parse("[fe80::1%eth0]:5"),
            Some("[fe80::1]:5".parse().unwrap())
        );
        assert_eq!(parse("localhost:5"), None);
        assert_eq!(parse("@"), None);
    }
}
