//! What insurebot's own PostgreSQL connections promise, below the SQL: here, that a statement
//! goes out at once however many writes it takes. (PostgreSQL only.)

use insurebot::config::DatabaseUrl;
use sea_orm::{ConnectionTrait, Statement};

use crate::helpers::*;

/// sqlx 0.9.0 stopped setting TCP_NODELAY (sqlx#4335). Over TLS every record of a statement
/// is a write of its own, and a statement larger than one record (16 KB: the ingest's batch
/// INSERT with its raw payloads) then waited for PostgreSQL's delayed ACK, ~40 ms each time
/// (64 KB INSERT: 44 ms with TLS, 0.7 ms without). The vendored sqlx-core sets it again; this
/// finds the socket behind one of the pool's connections and checks.
#[needs_postgres(tcp)]
#[tokio::test]
async fn a_postgresql_connection_has_nagles_delay_off_so_large_statements_go_at_once() {
    let Backend::Postgres(admin_url) = postgres_only() else {
        unreachable!("postgres_only returns PostgreSQL")
    };
    let db = insurebot::store::connect(&DatabaseUrl::new(admin_url))
        .await
        .expect("connect");
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT inet_client_port()",
        ))
        .await
        .expect("query")
        .expect("a row");
    // `needs_postgres(tcp)` ignores this test for a URL naming a Unix socket.
    let client_port = row
        .try_get_by_index::<Option<i32>>(0)
        .expect("port")
        .expect("a TCP connection (the URL names no Unix socket), which has a client port");
    // On loopback PostgreSQL sees the client's own port.
    let nodelay = own_tcp_nodelay(u16::try_from(client_port).expect("a port"), None)
        .expect("the connection's socket among this process's descriptors");
    assert!(
        nodelay,
        "TCP_NODELAY is off on the connection from port {client_port}"
    );
}
