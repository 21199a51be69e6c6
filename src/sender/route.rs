//! The route stage: hands each sealed object to the link its channel is configured for.
//! A channel's link is fixed by configuration; an object is never sent on another.

use crate::core::stage::Sealed;
use crate::core::wire::LinkKind;
use crate::node::Node;
use std::sync::Arc;
use tokio::sync::mpsc;

/// The links' queues: QUIC's (async) and, when a channel uses it, the diode's (a thread).
pub struct Links {
    /// The QUIC sender's queue, when a sending channel uses QUIC.
    pub quic: Option<mpsc::UnboundedSender<Sealed>>,
    /// The diode sender's queue, when a sending channel uses the diode.
    pub diode: Option<std::sync::mpsc::Sender<Sealed>>,
}

/// Sends each sealed object to its channel's link, until the queue closes.
pub async fn route(node: Arc<Node>, mut queue: mpsc::UnboundedReceiver<Sealed>, links: Links) {
    while let Some(sealed) = queue.recv().await {
        let link = node.cfg.channel(&sealed.manifest().channel).map(|c| c.link);
        let sent = match (link, &links.quic, &links.diode) {
            (Some(LinkKind::Diode), _, Some(d)) => d.send(sealed).is_ok(),
            (Some(LinkKind::Quic), Some(q), _) => q.send(sealed).is_ok(),
            _ => false,
        };
        if !sent {
            tracing::error!(
                link = ?link,
                "no running link for this channel; the object stays in the spool until the next start"
            );
        }
    }
}
