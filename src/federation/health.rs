//! What the federation tells other replicas of upstreams' health, and what it hears from them.

use super::Federation;

impl Federation {
    /// Tells the other replicas that an upstream went down or came back.
    pub(super) fn announce_health(&self, gateway_id: &str, reachable: bool) {
        self.cluster.publish(crate::cluster::Event::UpstreamHealth {
            gateway_id: gateway_id.to_owned(),
            reachable,
        });
    }

    /// Applies another replica's news that an upstream went down or came back (its breaker
    /// here opens or closes).
    pub fn heard_health(&self, gateway_id: &str, reachable: bool) {
        if let Some(gateway) = self.catalog.current().gateway(gateway_id) {
            self.upstream
                .heard_health(gateway_id, &gateway.name, reachable);
        }
    }
}
