//! How many bytes a peer on this same host has received but not yet read,
//! asked of the kernel (`NETLINK_SOCK_DIAG`, as `ss` does).
//!
//! For a client on loopback this answers exactly the question pacing asks
//! ("has the application read everything we sent?"): the peer socket's
//! receive queue is empty once its application has read it all. A peer on
//! another host has no socket here; the query then says so and pacing falls
//! back to what our own socket shows.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::sync::{Mutex, OnceLock};

use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketType, netlink};

/// `SOCK_DIAG_BY_FAMILY`, the request type.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `NLM_F_REQUEST`.
const NLM_F_REQUEST: u16 = 1;
/// `NLMSG_ERROR`, the type of an error (or acknowledgement) reply.
const NLMSG_ERROR: u16 = 2;
/// Length of `struct nlmsghdr`.
const NETLINK_HEADER_LEN: usize = 16;
/// Length of `struct inet_diag_req_v2`.
const REQUEST_LEN: usize = 56;
/// Offset of `idiag_rqueue` in a reply: the netlink header, then in
/// `struct inet_diag_msg` four bytes, the 48-byte socket id and `idiag_expires`.
const RQUEUE_OFFSET: usize = NETLINK_HEADER_LEN + 4 + 48 + 4;
/// Where the attributes start: after the 72-byte `struct inet_diag_msg`.
const ATTRIBUTES_OFFSET: usize = NETLINK_HEADER_LEN + 72;
/// `INET_DIAG_INFO`: the attribute holding the socket's `struct tcp_info`.
const INET_DIAG_INFO: u16 = 2;
/// Offset of `tcpi_bytes_received` (u64) in `struct tcp_info`.
const BYTES_RECEIVED_OFFSET: usize = 128;

/// One netlink socket for the whole process: queries are answered
/// synchronously by the kernel, so a short lock is all the sharing needs.
fn diag_socket() -> Option<&'static Mutex<OwnedFd>> {
    static SOCKET: OnceLock<Option<Mutex<OwnedFd>>> = OnceLock::new();
    SOCKET
        .get_or_init(|| {
            rustix::net::socket_with(
                AddressFamily::NETLINK,
                SocketType::DGRAM,
                rustix::net::SocketFlags::CLOEXEC,
                Some(netlink::SOCK_DIAG),
            )
            .ok()
            .map(Mutex::new)
        })
        .as_ref()
}

/// The query for one connection's peer socket.
#[derive(Clone)]
pub struct PeerQueue {
    request: [u8; NETLINK_HEADER_LEN + REQUEST_LEN],
}

impl PeerQueue {
    /// A query for the socket at `peer` whose remote end is `local` (our
    /// side of the connection). `None` for mixed address families.
    pub fn new(local: SocketAddr, peer: SocketAddr) -> Option<PeerQueue> {
        let (family, source, destination) = match (peer.ip(), local.ip()) {
            (IpAddr::V4(source), IpAddr::V4(destination)) => (
                libc::AF_INET as u8,
                padded(&source.octets()),
                padded(&destination.octets()),
            ),
            (IpAddr::V6(source), IpAddr::V6(destination)) => {
                (libc::AF_INET6 as u8, source.octets(), destination.octets())
            }
            _ => return None,
        };
        let mut request = [0u8; NETLINK_HEADER_LEN + REQUEST_LEN];
        let total = request.len() as u32;
        request[0..4].copy_from_slice(&total.to_ne_bytes());
        request[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        request[6..8].copy_from_slice(&NLM_F_REQUEST.to_ne_bytes());
        let body = &mut request[NETLINK_HEADER_LEN..];
        body[0] = family;
        body[1] = libc::IPPROTO_TCP as u8;
        // idiag_ext: ask for INET_DIAG_INFO (bit INET_DIAG_INFO - 1).
        body[2] = 1 << (INET_DIAG_INFO - 1);
        // idiag_states: any state.
        body[4..8].copy_from_slice(&u32::MAX.to_ne_bytes());
        // The socket id: ports and addresses in network order.
        body[8..10].copy_from_slice(&peer.port().to_be_bytes());
        body[10..12].copy_from_slice(&local.port().to_be_bytes());
        body[12..28].copy_from_slice(&source);
        body[28..44].copy_from_slice(&destination);
        // idiag_if = 0, idiag_cookie = INET_DIAG_NOCOOKIE (all ones).
        body[48..56].copy_from_slice(&[0xff; 8]);
        Some(PeerQueue { request })
    }

    /// What the peer's socket holds; `Ok(None)` when the peer is not a
    /// socket on this host.
    pub fn state(&self) -> io::Result<Option<PeerState>> {
        let socket = diag_socket().ok_or_else(|| io::Error::other("no sock_diag socket"))?;
        let socket = socket
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        rustix::net::send(&*socket, &self.request, SendFlags::empty())?;
        let mut reply = [0u8; 2048];
        let (_, length) = rustix::net::recv(&*socket, &mut reply[..], RecvFlags::DONTWAIT)?;
        drop(socket);
        parse_reply(&reply[..length.min(reply.len())])
    }
}

/// A peer socket's receive side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerState {
    /// Bytes received that its application has not read yet.
    pub unread: u32,
    /// Bytes received in all, in order (`tcpi_bytes_received`).
    pub received: u64,
}

fn parse_reply(reply: &[u8]) -> io::Result<Option<PeerState>> {
    let short = || io::Error::other("short sock_diag reply");
    let u16_at = |at: usize| {
        reply
            .get(at..at + 2)
            .map(|b| u16::from_ne_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        reply
            .get(at..at + 4)
            .map(|b| u32::from_ne_bytes(b.try_into().expect("4 bytes")))
    };
    if u16_at(4).ok_or_else(short)? == NLMSG_ERROR {
        let errno = u32_at(NETLINK_HEADER_LEN).unwrap_or(0) as i32;
        return match -errno {
            libc::ENOENT => Ok(None),
            errno => Err(io::Error::from_raw_os_error(errno)),
        };
    }
    let unread = u32_at(RQUEUE_OFFSET).ok_or_else(short)?;
    let mut at = ATTRIBUTES_OFFSET;
    while let (Some(length), Some(kind)) = (u16_at(at), u16_at(at + 2)) {
        let length = usize::from(length);
        if length < 4 {
            break;
        }
        if kind == INET_DIAG_INFO {
            let field = at + 4 + BYTES_RECEIVED_OFFSET;
            let received = reply
                .get(field..field + 8)
                .filter(|_| field + 8 <= at + length)
                .map(|b| u64::from_ne_bytes(b.try_into().expect("8 bytes")))
                .ok_or_else(short)?;
            return Ok(Some(PeerState { unread, received }));
        }
        at += length.next_multiple_of(4);
    }
    Err(io::Error::other("sock_diag reply without tcp_info"))
}

/// An IPv4 address in the 16-byte field of a socket id.
fn padded(octets: &[u8; 4]) -> [u8; 16] {
    let mut field = [0u8; 16];
    field[..4].copy_from_slice(octets);
    field
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    fn settle(query: &PeerQueue, expected: u32) -> PeerState {
        // The bytes are in flight on loopback for microseconds; look until
        // they have landed (bounded: a wrong answer fails the test).
        let mut last = query.state().unwrap().expect("a local peer");
        for _ in 0..10_000 {
            if last.unread == expected {
                break;
            }
            std::thread::yield_now();
            last = query.state().unwrap().expect("a local peer");
        }
        last
    }

    #[test]
    fn sees_what_a_local_peer_has_not_read() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, peer) = listener.accept().unwrap();
        let query = PeerQueue::new(server.local_addr().unwrap(), peer).unwrap();
        let fresh = PeerState {
            unread: 0,
            received: 0,
        };
        assert_eq!(query.state().unwrap(), Some(fresh));
        server.write_all(b"<Ab3X9kQw>").unwrap();
        assert_eq!(
            settle(&query, 10),
            PeerState {
                unread: 10,
                received: 10
            }
        );
        client.read_exact(&mut [0u8; 4]).unwrap();
        assert_eq!(
            settle(&query, 6),
            PeerState {
                unread: 6,
                received: 10
            }
        );
        client.read_exact(&mut [0u8; 6]).unwrap();
        server.write_all(&[7u8; 100_000]).unwrap_or_default();
        let landed = settle(&query, 100_000);
        assert_eq!(landed.received - 10, u64::from(landed.unread));
    }

    #[test]
    fn a_peer_that_is_not_here_is_none() {
        let local: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let peer: SocketAddr = "127.0.0.1:2".parse().unwrap();
        assert_eq!(PeerQueue::new(local, peer).unwrap().state().unwrap(), None);
    }
}
