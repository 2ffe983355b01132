//! The settings of an edge agent's `connect` step written by name — `pickup`, `transport`,
//! `did` — and what each accepts. One check serves the three places a value is known: the
//! compiler (a literal, so `acaload validate` finds it), `resolve` (a template, once the
//! variables are known) and each user's `connect` (which uses the value).

use std::time::Duration;

use crate::didcomm::pickup::Pickup;

/// A `connect` setting chosen by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// `implicit` (also empty), `v2` or `v2_live`.
    Pickup,
    /// `credo` (also empty) or `socket`.
    Transport,
    /// `peer1` (also empty) or `peer4`.
    Did,
}

impl Choice {
    /// The setting's key in the plan.
    pub fn key(self) -> &'static str {
        match self {
            Choice::Pickup => "pickup",
            Choice::Transport => "transport",
            Choice::Did => "did",
        }
    }

    fn accepts(self, value: &str) -> bool {
        match self {
            Choice::Pickup => pickup(value, Duration::ZERO).is_some(),
            Choice::Transport => credo_transport(value).is_some(),
            Choice::Did => did_peer_1(value).is_some(),
        }
    }

    /// `Err` with the one-line message when `value` is not one of the setting's names.
    pub fn check(self, value: &str) -> Result<(), String> {
        if self.accepts(value) {
            return Ok(());
        }
        let names = match self {
            Choice::Pickup => "none of implicit, v2 or v2_live",
            Choice::Transport => "neither credo nor socket",
            Choice::Did => "neither peer1 nor peer4",
        };
        Err(format!("{} `{}` is {names}", self.key(), value.trim()))
    }
}

/// `pickup`: `implicit` (the default, also when empty), `v2` (polled every `poll`) or `v2_live`.
pub fn pickup(name: &str, poll: Duration) -> Option<Pickup> {
    match name.trim() {
        "implicit" | "" => Some(Pickup::Implicit),
        "v2" => Some(Pickup::V2(poll)),
        "v2_live" => Some(Pickup::V2Live),
        _ => None,
    }
}

/// `transport`: `credo` (the default, also when empty) or `socket`: whether messages to the
/// mediator travel as Credo sends them.
pub fn credo_transport(name: &str) -> Option<bool> {
    match name.trim() {
        "credo" | "" => Some(true),
        "socket" => Some(false),
        _ => None,
    }
}

/// `did`: `peer1` (the default, also when empty) or `peer4`: whether the agent connects to the
/// mediator with a did:peer:1, as Credo 0.5 does.
pub fn did_peer_1(name: &str) -> Option<bool> {
    match name.trim() {
        "peer1" | "" => Some(true),
        "peer4" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_choice_takes_its_names_and_says_which_they_are() {
        assert_eq!(
            pickup(" v2 ", Duration::from_secs(1)),
            Some(Pickup::V2(Duration::from_secs(1)))
        );
        assert_eq!(pickup("", Duration::ZERO), Some(Pickup::Implicit));
        assert_eq!(credo_transport("socket"), Some(false));
        assert_eq!(did_peer_1("peer4"), Some(false));
        assert_eq!(Choice::Did.check("peer1"), Ok(()));
        assert_eq!(
            Choice::Pickup.check("v3"),
            Err("pickup `v3` is none of implicit, v2 or v2_live".to_string())
        );
        assert_eq!(
            Choice::Transport.check("http"),
            Err("transport `http` is neither credo nor socket".to_string())
        );
    }
}
