//! TEMPORARY STUB (being replaced by the real pacing module).
#![allow(missing_docs)]
use tokio::net::TcpStream;
pub struct Pacer;
impl Pacer {
    pub fn new(_stream: &TcpStream) -> Self {
        Pacer
    }
    pub async fn wait_until_read(&mut self, _stream: &TcpStream) {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
