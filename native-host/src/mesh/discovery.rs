//! Finding other nodes on the LAN with DNS-SD over mDNS (`mdns-sd`).
//!
//! Each engine advertises `_mailmesh._tcp.local.` with its link port and,
//! in TXT, its node id (`id`), the id of the network key it holds (`net`,
//! a non-secret digest) and the protocol version (`v`). What others
//! advertise is only a hint of where to dial: identity is proven by the
//! link handshake, never by an advertisement.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use mailmesh_core::identity::NodeId;
use mdns_sd::{ServiceDaemon, ServiceEvent, ServiceInfo};

use super::Mesh;

pub const SERVICE_TYPE: &str = "_mailmesh._tcp.local.";
const PROTOCOL: &str = "1";
/// How often to look for peers that should be (re)dialed.
const DIAL_TICK: Duration = Duration::from_millis(1000);

/// Advertises this node and dials what it finds, until the engine stops.
pub async fn run(mesh: Arc<Mesh>) {
    let daemon = match ServiceDaemon::new() {
        Ok(daemon) => daemon,
        Err(e) => {
            tracing::warn!("mDNS is unavailable, other nodes will not be found on the LAN: {e}");
            return;
        }
    };
    let browse = match daemon.browse(SERVICE_TYPE) {
        Ok(browse) => browse,
        Err(e) => {
            tracing::warn!("cannot browse for other nodes: {e}");
            return;
        }
    };
    let mut identity = mesh.identity.subscribe();
    let mut advertised = advertise(&daemon, &mesh, None);
    let mut tick = tokio::time::interval(DIAL_TICK);
    loop {
        tokio::select! {
            _ = mesh.shutdown.cancelled() => break,
            event = browse.recv_async() => match event {
                Ok(event) => on_event(&mesh, event),
                Err(_) => break,
            },
            changed = identity.changed() => {
                if changed.is_err() {
                    break;
                }
                advertised = advertise(&daemon, &mesh, advertised);
            }
            _ = tick.tick() => mesh.dial_due(),
        }
    }
    let _ = daemon.shutdown();
}

/// (Re-)registers our advertisement when what it says has changed.
fn advertise(
    daemon: &ServiceDaemon,
    mesh: &Mesh,
    current: Option<(String, Option<String>)>,
) -> Option<(String, Option<String>)> {
    let key_id = mesh.identity.borrow().key_id.clone();
    if let Some((_, advertised_key)) = &current {
        if *advertised_key == key_id {
            return current;
        }
        // Registering the same name again updates it. (Unregistering first
        // would send a goodbye that peers may process after the new record.)
    }
    let id = mesh.secrets.node_id().to_string();
    let mut properties = vec![("id", id.clone()), ("v", PROTOCOL.to_string())];
    if let Some(key_id) = &key_id {
        properties.push(("net", key_id.clone()));
    }
    let info = ServiceInfo::new(SERVICE_TYPE, &id, &format!("{id}.local."), "", mesh.link_port, &properties[..])
        .map(ServiceInfo::enable_addr_auto);
    match info.and_then(|info| {
        let fullname = info.get_fullname().to_string();
        daemon.register(info).map(|_| fullname)
    }) {
        Ok(fullname) => {
            tracing::info!(port = mesh.link_port, "advertising on the LAN");
            Some((fullname, key_id))
        }
        Err(e) => {
            tracing::warn!("cannot advertise on the LAN: {e}");
            None
        }
    }
}

/// Notes where a resolved service listens. A goodbye (`ServiceRemoved`)
/// changes nothing: addresses are only hints, a node that left is simply not
/// reached (and dialed less and less often), and anyone could send a goodbye
/// in another node's name.
fn on_event(mesh: &Mesh, event: ServiceEvent) {
    let ServiceEvent::ServiceResolved(service) = event else { return };
    let Some(id) = service.get_property_val_str("id").and_then(|id| id.parse::<NodeId>().ok()) else {
        return;
    };
    if id == mesh.secrets.node_id() || service.get_property_val_str("v") != Some(PROTOCOL) {
        return;
    }
    let mut addresses: Vec<SocketAddr> = service
        .get_addresses_v4()
        .into_iter()
        .filter(|ip| !ip.is_loopback())
        .map(|ip| SocketAddr::new(IpAddr::V4(ip), service.get_port()))
        .collect();
    addresses.sort();
    let key = service.get_property_val_str("net").map(str::to_string);
    tracing::debug!(peer = %id, ?addresses, "seen on the LAN");
    mesh.advertised(id, addresses, key);
}
