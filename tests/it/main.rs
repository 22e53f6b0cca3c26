//! Integration tests, one binary, a module per area. Every test starts its
//! own server in process on port 0 in a temporary directory.

mod support;

mod cli_serve_config;
mod cli_user;

mod client_connect;
mod client_extended;
mod client_operations;
mod client_original;
mod client_script;
mod client_shell;
mod client_tls;

mod extended_ordering;
mod extended_protocol;

mod properties;
mod protocols_agree;

mod security_accounts;
mod security_tls;

mod server_bounds;
mod server_commands;
mod server_crash;
mod server_jail;
mod server_limits;
mod server_listing;
mod server_memory;
mod server_original_client;
mod server_races;
mod server_shutdown;
mod server_syntax;
mod server_transfers;

mod servers_sharing_a_bucket;

mod storage_contract;
mod storage_s3;

mod web_browser;
mod web_dav;
mod web_http;
mod web_sendfile;
mod web_serve;
