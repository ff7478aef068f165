//! `scripts/cluster`: PostgreSQL, N nodes (default 2) and HAProxy in front of them, on
//! loopback, until Ctrl-C. Usage: cluster [nodes] [haproxy port].

use callqueue_e2e::{Result, ServerOptions, cluster::Cluster};

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let nodes: usize = args.next().map_or(Ok(2), |n| n.parse())?;
    let port: Option<u16> = args.next().map(|p| p.parse()).transpose()?;
    if nodes == 0 || nodes > 16 {
        return Err("between 1 and 16 nodes".into());
    }
    let cluster = Cluster::start_at(nodes, ServerOptions::default(), port).await?;
    cluster.nodes[0]
        .add_specialist("demo", "demo-secret")
        .await?;
    println!("\ncallqueue cluster is running.");
    println!(
        "  Through HAProxy: {}/  (specialists: {}/agent, user demo, secret demo-secret)",
        cluster.proxy.base, cluster.proxy.base
    );
    for (i, node) in cluster.nodes.iter().enumerate() {
        println!(
            "  Node {i}: {}/  (pid {})",
            node.base,
            node.pid().unwrap_or_default()
        );
    }
    println!("  PostgreSQL: {}", cluster.postgres.url());
    println!("Kill a node (kill -9 <pid>) and watch the pages carry on. Stop with Ctrl-C.\n");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
