//! Compiling edge-agent steps (`didcomm:`): templates once, timeouts as literal durations.

use std::time::Duration;

use super::CompiledDidcomm;
use super::cx::Cx;
use crate::plan::{Didcomm, Flag};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const PING_TIMEOUT: Duration = Duration::from_secs(10);

impl Cx<'_> {
    pub(super) fn didcomm(&mut self, p: &str, d: &Didcomm) -> CompiledDidcomm {
        let timeout = |cx: &mut Self, at: &str, t: &Option<String>, default: Duration| {
            let pointer = format!("{p}/{at}/timeout");
            if let Some(text) = t
                && crate::plan::template::is_template(text)
            {
                cx.error(
                    &pointer,
                    "a `didcomm` timeout is a duration such as `30s`, not a template",
                );
                return default;
            }
            cx.opt_duration(&pointer, t.as_ref(), default)
        };
        match d {
            Didcomm::Connect(c) => {
                let at = format!("{p}/connect");
                CompiledDidcomm::Connect {
                    invitation: self.compiler.text(
                        &format!("{at}/invitation"),
                        &c.invitation,
                        false,
                    ),
                    websocket: self
                        .compiler
                        .text(&format!("{at}/websocket"), &c.websocket, false),
                    label: c
                        .label
                        .as_ref()
                        .map(|l| self.compiler.text(&format!("{at}/label"), l, false)),
                    drain: c.drain.as_ref().map(|f| {
                        let v = match f {
                            Flag::Literal(b) => serde_json::Value::Bool(*b),
                            Flag::Template(t) => serde_json::Value::String(t.clone()),
                        };
                        self.compiler.json(&format!("{at}/drain"), &v)
                    }),
                    timeout: timeout(self, "connect", &c.timeout, DEFAULT_TIMEOUT),
                }
            }
            Didcomm::RequestMediation(w) => CompiledDidcomm::RequestMediation {
                timeout: timeout(self, "request_mediation", &w.timeout, DEFAULT_TIMEOUT),
            },
            Didcomm::Invite(i) => CompiledDidcomm::Invite {
                into: i.into.clone(),
                timeout: timeout(self, "invite", &i.timeout, DEFAULT_TIMEOUT),
            },
            Didcomm::AcceptInvitation(a) => CompiledDidcomm::AcceptInvitation {
                invitation: self
                    .compiler
                    .json(&format!("{p}/accept_invitation/invitation"), &a.invitation),
                timeout: timeout(self, "accept_invitation", &a.timeout, DEFAULT_TIMEOUT),
            },
            Didcomm::AwaitConnection(w) => CompiledDidcomm::AwaitConnection {
                timeout: timeout(self, "await_connection", &w.timeout, DEFAULT_TIMEOUT),
            },
            Didcomm::Message(m) => CompiledDidcomm::Message {
                content: m.content.as_ref().map(|c| {
                    self.compiler
                        .text(&format!("{p}/message/content"), c, false)
                }),
            },
            Didcomm::Delivered(w) => CompiledDidcomm::Delivered {
                timeout: timeout(self, "delivered", &w.timeout, DEFAULT_TIMEOUT),
            },
            Didcomm::Ping(ping) => CompiledDidcomm::Ping {
                to: ping.to,
                timeout: timeout(self, "ping", &ping.timeout, PING_TIMEOUT),
            },
            Didcomm::Disconnect(w) => CompiledDidcomm::Disconnect {
                timeout: timeout(self, "disconnect", &w.timeout, DEFAULT_TIMEOUT),
            },
        }
    }
}
