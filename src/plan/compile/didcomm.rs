//! Compiling edge-agent steps (`didcomm:`): templates once; timeouts literal or templated
//! (rendered and checked by `resolve`, like every other duration).

use std::time::Duration;

use super::cx::Cx;
use super::{CompiledDidcomm, ConnectBehaviour};
use crate::plan::edge::Choice;
use crate::plan::{Didcomm, Flag};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const PING_TIMEOUT: Duration = Duration::from_secs(10);

impl Cx<'_> {
    /// A `connect` setting chosen by name: compiled with its place in the plan; a literal is
    /// checked here, a template by `resolve`.
    fn choice(
        &mut self,
        at: &str,
        choice: Choice,
        written: &Option<String>,
    ) -> Option<(String, crate::plan::template::Text)> {
        let written = written.as_ref()?;
        let pointer = format!("{at}/{}", choice.key());
        if !crate::plan::template::is_template(written)
            && let Err(why) = choice.check(written)
        {
            self.error(&pointer, why);
        }
        let text = self.compiler.text(&pointer, written, false);
        Some((pointer, text))
    }

    pub(super) fn didcomm(&mut self, p: &str, d: &Didcomm) -> CompiledDidcomm {
        let timeout = |cx: &mut Self, at: &str, t: &Option<String>, default: Duration| {
            cx.opt_duration(&format!("{p}/{at}/timeout"), t.as_ref(), default, true)
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
                    behaviour: Box::new(ConnectBehaviour {
                        drain: c.drain.as_ref().map(|f| {
                            let v = match f {
                                Flag::Literal(b) => serde_json::Value::Bool(*b),
                                Flag::Template(t) => serde_json::Value::String(t.clone()),
                            };
                            self.compiler.json(&format!("{at}/drain"), &v)
                        }),
                        chosen: [
                            (Choice::Pickup, &c.pickup),
                            (Choice::Transport, &c.transport),
                            (Choice::Did, &c.did),
                        ]
                        .map(|(choice, written)| (choice, self.choice(&at, choice, written))),
                        poll: self.opt_duration(
                            &format!("{at}/poll"),
                            c.poll.as_ref(),
                            crate::didcomm::pickup::CREDO_POLL,
                            true,
                        ),
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

#[cfg(test)]
mod tests {
    use crate::plan::compile::{CompiledDidcomm, StepKind, load_str};

    const HEAD: &str = "name: t\ntarget: { base_url: http://x }\nload: { constant: { users: 1, duration: 1s } }\nuser:\n  setup:\n";

    fn load(steps: &str) -> Result<crate::plan::compile::CompiledPlan, String> {
        load_str("t.yaml", format!("{HEAD}{steps}")).map_err(|f| f.render())
    }

    #[test]
    fn edge_steps_compile_with_defaults() {
        let p = load(
            "    - didcomm: { connect: { invitation: \"{{ 'u' }}\", websocket: ws://x } }\n    - didcomm: { invite: { as: inv } }\n    - didcomm: { accept_invitation: { invitation: \"{{ inv }}\" } }\n    - didcomm: { ping: { to: peer } }\n    - didcomm: { disconnect: {} }\n",
        )
        .unwrap();
        let kinds: Vec<_> = p
            .setup
            .iter()
            .map(|s| match &s.kind {
                StepKind::Didcomm(d) => (s.name.to_string(), d.action()),
                _ => panic!("not didcomm"),
            })
            .collect();
        assert_eq!(kinds[0], ("didcomm connect".into(), "connect"));
        assert_eq!(kinds[4].1, "disconnect");
        let StepKind::Didcomm(d) = &p.setup[3].kind else {
            unreachable!()
        };
        assert!(
            matches!(**d, CompiledDidcomm::Ping { timeout, .. } if timeout == crate::plan::compile::Dur::Literal(std::time::Duration::from_secs(10)))
        );
    }

    #[test]
    fn mistakes_are_located() {
        let e = load("    - didcomm: { ping: { to: everyone } }\n").unwrap_err();
        assert!(e.contains("t.yaml:6:"), "{e}");
        let e = load("    - didcomm: { delivered: { timeout: 0s } }\n").unwrap_err();
        assert!(
            e.contains("t.yaml:6:") && e.contains("must be longer than zero"),
            "{e}"
        );
        let e = load("    - didcomm: { delivered: {} }\n      sleep: 1s\n").unwrap_err();
        assert!(e.contains("`didcomm`") && e.contains("`sleep`"), "{e}");
        let e = load("    - didcomm: { message: {} }\n      check: { status: 200 }\n").unwrap_err();
        assert!(e.contains("only applies to `request`"), "{e}");
    }
}
