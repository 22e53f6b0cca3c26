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

    /// Bytes the peer has received and its application has not read yet;
    /// `Ok(None)` when the peer is not a socket on this host.
    pub fn unread(&self) -> io::Result<Option<u32>> {
        let socket = diag_socket().ok_or_else(|| io::Error::other("no sock_diag socket"))?;
        let socket = socket.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        rustix::net::send(&*socket, &self.request, SendFlags::empty())?;
        let mut reply = [0u8; 512];
        let (_, length) = rustix::net::recv(&*socket, &mut reply[..], RecvFlags::DONTWAIT)?;
        let reply = &reply[..length.min(reply.len())];
        if reply.len() < NETLINK_HEADER_LEN {
            return Err(io::Error::other("short sock_diag reply"));
        }
        let kind = u16::from_ne_bytes([reply[4], reply[5]]);
        if kind == NLMSG_ERROR {
            let errno = reply
                .get(NETLINK_HEADER_LEN..NETLINK_HEADER_LEN + 4)
                .map(|bytes| i32::from_ne_bytes(bytes.try_into().expect("4 bytes")))
                .unwrap_or(0);
            return match -errno {
                libc::ENOENT => Ok(None),
                errno => Err(io::Error::from_raw_os_error(errno)),
            };
        }
        let queue = reply
            .get(RQUEUE_OFFSET..RQUEUE_OFFSET + 4)
            .ok_or_else(|| io::Error::other("short sock_diag reply"))?;
        Ok(Some(u32::from_ne_bytes(queue.try_into().expect("4 bytes"))))
    }
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

    fn settle(query: &PeerQueue, expected: u32) -> u32 {
        // The bytes are in flight on loopback for microseconds; look until
        // they have landed (bounded: a wrong answer fails the test).
        let mut last = 0;
        for _ in 0..10_000 {
            last = query.unread().unwrap().expect("a local peer");
            if last == expected {
                break;
            }
            std::thread::yield_now();
        }
        last
    }

    #[test]
    fn sees_what_a_local_peer_has_not_read() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, peer) = listener.accept().unwrap();
        let query = PeerQueue::new(server.local_addr().unwrap(), peer).unwrap();
        assert_eq!(query.unread().unwrap(), Some(0));
        server.write_all(b"<Ab3X9kQw>").unwrap();
        assert_eq!(settle(&query, 10), 10);
        let mut buffer = [0u8; 4];
        client.read_exact(&mut buffer).unwrap();
        assert_eq!(settle(&query, 6), 6);
        client.read_exact(&mut [0u8; 6]).unwrap();
        assert_eq!(query.unread().unwrap(), Some(0));
    }

    #[test]
    fn a_peer_that_is_not_here_is_none() {
        let local: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let peer: SocketAddr = "127.0.0.1:2".parse().unwrap();
        assert_eq!(PeerQueue::new(local, peer).unwrap().unread().unwrap(), None);
    }
}
