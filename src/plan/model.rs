//! The plan model: what a YAML test plan may say, as serde + schemars types.
//! Strings that contain `{{ … }}` are templates; they are compiled by `compile`, not here.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A declarative load test for ACA-Py agents.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Short name, shown in reports and used to refuse merging results of different plans.
    pub name: String,
    /// What the plan measures, for people reading the report.
    #[serde(default)]
    pub description: Option<String>,
    /// The ACA-Py admin API every request goes to.
    pub target: Target,
    /// Variables the plan reads from the environment, `.env` or `--set`, each typed.
    #[serde(default)]
    pub env: BTreeMap<String, EnvVar>,
    /// Plan-level variables (templates allowed), available to every user from the start.
    #[serde(default)]
    pub vars: BTreeMap<String, serde_json::Value>,
    /// The load shape: how many users (or iterations per second) over time.
    pub load: Load,
    /// Pools through which users hand values (such as invitations) to each other.
    #[serde(default)]
    pub pools: BTreeMap<String, Pool>,
    /// What each virtual user does.
    pub user: User,
    /// Pass/fail limits evaluated at the end of the run.
    #[serde(default)]
    pub thresholds: Vec<Threshold>,
    /// Where agent events (webhooks) come from; needed by `wait_event` steps.
    #[serde(default)]
    pub events: Option<Events>,
    /// Agents whose `GET /status` gauges (conductor queues, tasks) are sampled during the run.
    #[serde(default)]
    pub watch: Vec<Watch>,
}

/// The source of agent events.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Events {
    /// `webhook` (an embedded listener the agents post to) or `websocket` (the admin `/ws`);
    /// a template such as `{{ env.EVENT_SOURCE }}` is allowed.
    pub source: String,
    /// Webhook listener bind address (default `127.0.0.1:0`, a free port).
    #[serde(default)]
    pub listen: Option<String>,
    /// The URL the agents should post to, when it differs from the bound address (Docker,
    /// Kubernetes). Templates see the final value as `webhook_url`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Admin websocket URL (default: the target's base URL with `ws://…/ws`).
    #[serde(default)]
    pub websocket_url: Option<String>,
    /// Admin API key for the websocket (default: the target's `X-API-Key` header).
    #[serde(default)]
    pub api_key: Option<String>,
}

/// Where events come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventSource {
    Webhook,
    Websocket,
}

impl EventSource {
    /// A rendered `events.source` (`webhook` or `websocket`).
    pub fn parse(s: &str) -> Result<EventSource, String> {
        match s.trim() {
            "webhook" => Ok(EventSource::Webhook),
            "websocket" => Ok(EventSource::Websocket),
            other => Err(format!(
                "event source `{other}` is neither `webhook` nor `websocket`"
            )),
        }
    }
}

/// An agent to watch.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Watch {
    /// Name in reports, e.g. `mediator`.
    pub name: String,
    /// Admin base URL (template), e.g. `{{ env.MEDIATOR_ADMIN_URL }}`. An entry whose URL
    /// renders empty is not watched (an optional agent, e.g. a second mediator instance);
    /// the report's gauges then have no row for it.
    pub url: String,
    /// Admin API key (template); left out when it renders empty.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Sampling interval (default `1s`).
    #[serde(default)]
    pub interval: Option<String>,
    /// A file holding the agent's process id (template), when the agent runs on this
    /// machine: each sample then also reads the process's CPU time and resident memory from
    /// `/proc` (Linux), so reports show the agent's CPU by load level. The file is read at
    /// every sample, so a restarted agent is followed. Left out when it renders empty.
    #[serde(default)]
    pub pid_file: Option<String>,
}

/// Wait for an agent event (webhook) of one tenant wallet.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitEvent {
    /// Webhook topic: `basicmessages`, `ping`, `connections`, `mediation`, `out_of_band`, …
    pub topic: String,
    /// The tenant wallet whose events to look at (template), e.g. `{{ wallet_id }}`.
    pub wallet: String,
    /// Condition on `event` (the payload), e.g. `event.content == nonce`. Default: any event.
    #[serde(default)]
    pub until: Option<String>,
    /// Give up (a failure) after this long (default `30s`).
    #[serde(default)]
    pub timeout: Option<String>,
    /// Name of an earlier step of this user whose send starts the clock: the time until
    /// the event arrived becomes this step's latency (e.g. delivery through the mediator).
    /// Events received after that send count, even if they came before the wait began.
    #[serde(default)]
    pub clock: Option<String>,
}

/// Where requests go and how.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Admin base URL, e.g. `{{ env.ACAPY_ADMIN_URL }}`.
    pub base_url: String,
    /// Headers sent with every request, e.g. `X-API-Key`. A header whose value renders empty is left out.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Request timeout (default `30s`); a step may override it.
    #[serde(default)]
    pub timeout: Option<String>,
    /// TCP connect timeout (default `5s`).
    #[serde(default)]
    pub connect_timeout: Option<String>,
    /// A path fetched once before the run (e.g. `/status`); anything but 2xx stops the run
    /// with one clear line (unreachable agent, wrong API key) before any user starts.
    #[serde(default)]
    pub preflight: Option<String>,
    /// The preflight passes on any HTTP answer, not only 2xx: for a DIDComm endpoint that
    /// serves only POST (Credo's answers 404 to a GET). Connect and TLS failures still stop
    /// the run.
    #[serde(default)]
    pub preflight_any_status: bool,
    /// At most this many requests in flight at once, and so at most this many connections
    /// (HTTP/1). Unset: no limit. A request waiting for a free connection is timed from when
    /// the user wanted to send it, so a limit that is too low shows in the latencies.
    #[serde(default)]
    #[schemars(range(min = 1, max = crate::plan::bounds::MAX_CONNECTIONS))]
    pub max_connections: Option<usize>,
    /// Skip TLS certificate verification. Off by default; turn on only for self-signed test agents.
    #[serde(default)]
    pub insecure_skip_tls_verify: bool,
    /// A PEM file of CA certificates trusted beside the system's roots (which `SSL_CERT_FILE`
    /// and `SSL_CERT_DIR` replace, as for OpenSSL), for every https:// and wss:// connection
    /// of the run, e.g. a private CA in front of a mediator. A template; empty = none.
    /// A relative path is from the working directory. `--ca-file` overrides it.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// The response header by which a proxy or load balancer in front of the target names the
    /// instance that answered (e.g. `X-Mediator-Instance`), read off edge agents' forward POSTs
    /// and WebSocket upgrades: a message lost at an instance that holds no socket for its
    /// receiver is then counted lost for that reason. A template; empty = none.
    #[serde(default)]
    pub instance_header: Option<String>,
}

/// The type of an environment variable; values are checked before anything is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EnvType {
    String,
    Int,
    Float,
    Bool,
    Duration,
}

/// One environment variable the plan reads.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvVar {
    /// How the text is read: `int`, `float`, `bool` (`true`/`false` only), `duration`, `string`.
    #[serde(rename = "type", default = "default_env_type")]
    pub kind: EnvType,
    /// Used when the variable is not set. Without a default the variable is required.
    #[serde(default)]
    pub default: Option<serde_json::Value>,
    /// When false and no default is given, the variable is optional and renders as empty.
    #[serde(default = "yes")]
    pub required: bool,
    /// A secret (API key, wallet key): shown as `***` in explain output, logs and reports.
    #[serde(default)]
    pub secret: bool,
    /// What the variable means, for `.env.sample` readers.
    #[serde(default)]
    pub description: Option<String>,
}

fn default_env_type() -> EnvType {
    EnvType::String
}

fn yes() -> bool {
    true
}

/// A number or a template rendering to one (e.g. `"{{ env.USER_LIMIT }}"`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Num {
    Literal(f64),
    Template(String),
}

/// The load shape. Exactly one kind.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Load {
    /// The seed's Locust step shape: add `users_per_step` every `step_time` up to `user_limit`.
    Steps(StepsLoad),
    /// A fixed number of users for a duration.
    Constant(ConstantLoad),
    /// Linear ramps between user counts.
    Stages(Vec<Stage>),
    /// Open model: new iterations start on a schedule whether or not earlier ones finished.
    ArrivalRate(ArrivalRateLoad),
}

/// `users(t) = min(user_limit, (floor(t/step_time)+1) * users_per_step)` until `time_limit`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepsLoad {
    /// Time between steps (duration, template allowed).
    pub step_time: String,
    /// Users added at each step.
    #[schemars(extend("minimum" = 0, "maximum" = crate::plan::bounds::MAX_USERS))]
    pub users_per_step: Num,
    /// Most users at once.
    #[schemars(extend("minimum" = 0, "maximum" = crate::plan::bounds::MAX_USERS))]
    pub user_limit: Num,
    /// When the run ends (duration, template allowed).
    pub time_limit: String,
    /// Spawn rate as a fraction of the current target, per second (Locust's `SPAWN_PCT`, default 0.5).
    #[serde(default)]
    #[schemars(extend("minimum" = crate::plan::bounds::MIN_SPAWN, "maximum" = crate::plan::bounds::MAX_RATE))]
    pub spawn_pct: Option<Num>,
}

/// A fixed number of users.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConstantLoad {
    #[schemars(extend("minimum" = 0, "maximum" = crate::plan::bounds::MAX_USERS))]
    pub users: Num,
    pub duration: String,
    /// Users started per second (default: all at once).
    #[serde(default)]
    #[schemars(extend("minimum" = crate::plan::bounds::MIN_SPAWN, "maximum" = crate::plan::bounds::MAX_RATE))]
    pub spawn_rate: Option<Num>,
}

/// One linear ramp: reach `target` at the end of `duration`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub duration: String,
    #[schemars(extend("minimum" = 0, "maximum" = crate::plan::bounds::MAX_USERS))]
    pub target: Num,
}

/// Iterations per second, constant (`rate` + `duration`) or ramping (`stages`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArrivalRateLoad {
    /// Constant iterations per second.
    #[serde(default)]
    #[schemars(extend("minimum" = 0, "maximum" = crate::plan::bounds::MAX_RATE))]
    pub rate: Option<Num>,
    /// How long a constant rate lasts.
    #[serde(default)]
    pub duration: Option<String>,
    /// Ramping rate: linear ramps of iterations per second.
    #[serde(default)]
    pub stages: Option<Vec<Stage>>,
    /// Rate at time zero for ramping stages (default 0).
    #[serde(default)]
    #[schemars(extend("minimum" = 0, "maximum" = crate::plan::bounds::MAX_RATE))]
    pub start_rate: Option<Num>,
    /// Most users busy at once; a start that would exceed it is counted as dropped.
    #[schemars(extend("minimum" = 0, "maximum" = crate::plan::bounds::MAX_USERS))]
    pub max_users: Num,
}

/// A pool through which users hand values to each other.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    /// What the pool carries, for readers.
    #[serde(default)]
    pub description: Option<String>,
}

/// What one virtual user does.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Run once when the user starts.
    #[serde(default)]
    pub setup: Vec<Step>,
    /// The loop, repeated until the user is stopped.
    #[serde(default)]
    pub tasks: Tasks,
    /// Run once when the user stops (time limit, ramp-down or Ctrl-C), if setup got going.
    #[serde(default)]
    pub teardown: Vec<Step>,
    /// Pause between iterations: `1s` or a range `500ms..2s`. A pause may end up to 1 % late,
    /// on a wake-up acaload has anyway, so idle users cost fewer wake-ups.
    #[serde(default)]
    pub think: Option<String>,
}

/// The task loop: a list run in order, or a weighted random choice per iteration.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Tasks {
    Sequence(Vec<Step>),
    Weighted(WeightedTasks),
}

impl Default for Tasks {
    fn default() -> Self {
        Tasks::Sequence(Vec::new())
    }
}

/// Each iteration runs one of `choose`, picked by weight.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WeightedTasks {
    pub choose: Vec<WeightedTask>,
}

/// A named list of steps with a weight.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WeightedTask {
    pub name: String,
    #[serde(default = "one")]
    #[schemars(range(max = crate::plan::bounds::MAX_WEIGHT))]
    pub weight: u32,
    pub steps: Vec<Step>,
}

fn one() -> u32 {
    1
}

/// One step. Exactly one of `request`, `sleep`, `set`, `offer`, `take`, `wait_event`, `didcomm`
/// says what it does; the other keys refine it.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Name in the statistics (default: method and path).
    #[serde(default)]
    pub name: Option<String>,
    /// Run the step only when this condition holds, e.g. `user.index % 2 == 0`.
    #[serde(default)]
    pub when: Option<String>,
    /// An HTTP request to the target.
    #[serde(default)]
    pub request: Option<Request>,
    /// Pause, e.g. `1s`.
    #[serde(default)]
    pub sleep: Option<String>,
    /// Assign variables from templates.
    #[serde(default)]
    pub set: Option<BTreeMap<String, serde_json::Value>>,
    /// Put a value into a pool for another user to take.
    #[serde(default)]
    pub offer: Option<Offer>,
    /// Take a value another user offered (waits up to `timeout`).
    #[serde(default)]
    pub take: Option<Take>,
    /// Wait for an agent event (needs `events:`).
    #[serde(default)]
    pub wait_event: Option<WaitEvent>,
    /// Act as an edge agent (a phone): speak DIDComm v1 to the mediator and to a peer.
    #[serde(default)]
    pub didcomm: Option<Didcomm>,
    /// Response checks; a failed check fails the step.
    #[serde(default)]
    pub check: Option<Check>,
    /// Variables captured from the JSON response by JSONPath.
    #[serde(default)]
    pub capture: BTreeMap<String, CaptureSpec>,
    /// Repeat the request until a condition holds.
    #[serde(default)]
    pub poll: Option<Poll>,
    /// What the user does when the step fails.
    #[serde(default)]
    pub on_error: Option<OnError>,
}

/// What an edge agent does: the user itself is the agent (keys in memory), with one WebSocket
/// to the mediator, as a Credo wallet. Exactly one action per step.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Didcomm {
    /// Open the WebSocket to the mediator and connect with DID Exchange 1.1 from its
    /// out-of-band invitation (a did:peer:4 with a `didcomm:transport/queue` endpoint).
    Connect(DidcommConnect),
    /// Ask the mediator for mediation and wait for the grant (time to granted; the first
    /// sample of `onboarding` runs from the connect to the grant).
    RequestMediation(DidcommWait),
    /// Make an invitation key, register it with the mediator (`keylist-update`) and put an
    /// out-of-band invitation routed through the mediator into a variable, to offer in a pool.
    Invite(DidcommInvite),
    /// Answer a peer's invitation: register a new key, DID Exchange through the mediator.
    AcceptInvitation(DidcommAccept),
    /// Wait for the peer that took this agent's invitation and complete the DID Exchange.
    AwaitConnection(DidcommWait),
    /// Send a basic message to the peer: authcrypted to it, forward-wrapped for the mediator,
    /// POSTed to the mediator's endpoint (the latency of the POST).
    Message(DidcommMessage),
    /// Wait until every message sent since the last such wait reached the peer's socket (one
    /// after the other: a burst), each one's latency from its send. A message that does not
    /// arrive in time is counted lost (a later arrival is reported as held in the mediator's
    /// queue, with how long).
    Delivered(DidcommWait),
    /// Trust ping with a response: to the peer through the mediator (both ways), or to the
    /// mediator over the own socket. Its latency is the round trip.
    Ping(DidcommPing),
    /// Remove every key this agent registered (`keylist-update remove`) and close the socket.
    /// Does nothing for a user that never connected.
    Disconnect(DidcommWait),
}

/// `didcomm: { connect: … }`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DidcommConnect {
    /// The mediator's out-of-band invitation URL (`?oob=`), e.g. `{{ env.MEDIATOR_INVITATION_URL }}`.
    pub invitation: String,
    /// The mediator's WebSocket endpoint, e.g. `{{ env.MEDIATOR_WS_URL }}` (ACA-Py puts only its
    /// first endpoint, the HTTP one, in the invitation).
    pub websocket: String,
    /// The agent's label (default `acaload edge <user id>`).
    #[serde(default)]
    pub label: Option<String>,
    /// Send a trust ping (no response) on the socket after every received message, so
    /// messages the mediator held in its undelivered queue come out (ACA-Py issue 2111).
    /// Default false: as Credo, which leaves them there.
    #[serde(default)]
    pub drain: Option<Flag>,
    /// How the agent collects its messages, as Credo's pickup strategies: `implicit` (default:
    /// the mediator writes them on the socket; ACA-Py's only way), `v2` (Message Pickup 2.0,
    /// polled every `poll`) or `v2_live` (Pickup 2.0 live mode). A template must render to one
    /// of these before the run starts.
    #[serde(default)]
    pub pickup: Option<String>,
    /// How often `v2` asks for its status (default `5s`, Credo's `mediatorPollingInterval`).
    #[serde(default)]
    pub poll: Option<String>,
    /// How messages to the mediator travel: `credo` (default: as Credo 0.5 sends them — DID
    /// Exchange, keylist updates, pings to the mediator and, unless pickup is implicit, the
    /// mediation request by HTTP POST with `return_route: all`, the socket opened for the
    /// first message that needs it, a trust ping on it after an implicit grant) or `socket`
    /// (all on the socket, opened first: fewer HTTP requests than a real wallet makes).
    #[serde(default)]
    pub transport: Option<String>,
    /// The DID the agent connects to the mediator with: `peer1` (default: did:peer:1 with its
    /// signed doc attached, as Credo 0.5 sends it; the mediator verifies and stores the doc) or
    /// `peer4` (a long-form did:peer:4, which the mediator only decodes).
    #[serde(default)]
    pub did: Option<String>,
    /// Give up on the WebSocket and the DID Exchange after this long (default `30s`).
    #[serde(default)]
    pub timeout: Option<String>,
}

/// A boolean, or a template rendering to `true` or `false`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Flag {
    Literal(bool),
    Template(String),
}

/// An edge-agent action that waits for an answer.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DidcommWait {
    /// Give up (a failure) after this long (default `30s`).
    #[serde(default)]
    pub timeout: Option<String>,
}

/// `didcomm: { invite: { as: NAME } }`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DidcommInvite {
    /// The variable that receives the invitation (a JSON object).
    #[serde(rename = "as")]
    pub into: String,
    /// Give up on the `keylist-update` after this long (default `30s`).
    #[serde(default)]
    pub timeout: Option<String>,
}

/// `didcomm: { accept_invitation: { invitation: … } }`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DidcommAccept {
    /// The invitation: an object (`{{ peer.invitation }}`) or an `?oob=` URL.
    pub invitation: serde_json::Value,
    /// Give up after this long (default `30s`).
    #[serde(default)]
    pub timeout: Option<String>,
}

/// `didcomm: { message: … }`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DidcommMessage {
    /// The text (template; default a fresh UUID).
    #[serde(default)]
    pub content: Option<String>,
}

/// `didcomm: { ping: … }`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DidcommPing {
    /// `peer` (through the mediator, both ways) or `mediator` (over the own socket).
    pub to: PingTo,
    /// Give up (a failure) after this long (default `10s`).
    #[serde(default)]
    pub timeout: Option<String>,
}

/// Whom a trust ping goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PingTo {
    Peer,
    Mediator,
}

/// An HTTP request.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub method: Method,
    /// Path below `target.base_url` (or a full `http(s)://` URL).
    pub path: String,
    /// Query parameters; a parameter whose value renders empty is left out.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Extra headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Shorthand for `Authorization: Bearer …` (a tenant token). Left out when it renders empty.
    #[serde(default)]
    pub bearer: Option<String>,
    /// JSON body. String leaves are templates; a leaf that is one `{{ expression }}` keeps its JSON type.
    #[serde(default)]
    pub json: Option<serde_json::Value>,
    /// Overrides `target.timeout` for this request.
    #[serde(default)]
    pub timeout: Option<String>,
}

/// HTTP methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// Response checks.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// Accepted status codes (default: any 2xx).
    #[serde(default)]
    pub status: Option<StatusCodes>,
    /// Conditions on the response (`status`, `body`, `text`, `headers` and all variables).
    #[serde(default)]
    pub that: Vec<String>,
}

/// One status code or a list.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum StatusCodes {
    One(u16),
    Many(Vec<u16>),
}

impl StatusCodes {
    pub fn to_vec(&self) -> Vec<u16> {
        match self {
            StatusCodes::One(c) => vec![*c],
            StatusCodes::Many(v) => v.clone(),
        }
    }
}

/// A JSONPath capture: a path (first match) or a map with `path` and `select`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum CaptureSpec {
    Path(String),
    Full(CaptureFull),
}

/// A capture with its selection rule.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureFull {
    /// RFC 9535 JSONPath, e.g. `$.results[?@.alias=='mediator'].connection_id`.
    pub path: String,
    /// `first` (default), `one` (exactly one match) or `all` (a list, possibly empty).
    #[serde(default)]
    pub select: Select,
    /// A secret (tokens, keys): never shown in output or reports.
    #[serde(default)]
    pub secret: bool,
}

/// How many JSONPath matches a capture takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Select {
    #[default]
    First,
    One,
    All,
}

/// Repeat a request until `until` holds.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Poll {
    /// Condition on the response, e.g. `body.state == 'active'`.
    pub until: String,
    /// Pause between attempts (default `250ms`).
    #[serde(default)]
    pub interval: Option<String>,
    /// Give up (a failure) after this long (default `30s`).
    #[serde(default)]
    pub timeout: Option<String>,
}

/// Put a value into a pool.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Offer {
    pub pool: String,
    /// Offer to the taker that asks for this key (template); default: to anyone.
    #[serde(default)]
    pub key: Option<String>,
    /// The value (templates keep their JSON type, as in request bodies).
    pub value: serde_json::Value,
}

/// Take a value from a pool into a variable.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Take {
    pub pool: String,
    /// Take only an offer made with this key (template); default: any unkeyed offer.
    #[serde(default)]
    pub key: Option<String>,
    /// The variable that receives the value.
    #[serde(rename = "as")]
    pub into: String,
    /// How long to wait for an offer (default `30s`).
    #[serde(default)]
    pub timeout: Option<String>,
}

/// What the user does after a failed step.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum OnError {
    Action(ErrorAction),
    Retry(RetrySpec),
}

/// Where the user goes after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorAction {
    /// Stop this user (its teardown still runs). Default in `setup`.
    Stop,
    /// Skip the rest of this iteration. Default in `tasks`.
    NextIteration,
    /// Go on with the next step. Default in `teardown`.
    Continue,
}

/// Retry the step, then fall back to `then`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Extra attempts after the first.
    pub retry: u32,
    /// Pause between attempts (default `1s`).
    #[serde(default)]
    pub delay: Option<String>,
    /// What to do when all attempts failed (default as for the phase).
    #[serde(default)]
    pub then: Option<ErrorAction>,
}

/// A pass/fail limit. Without `step` it applies to all requests together.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    /// Step name the limit applies to (default: all requests).
    #[serde(default)]
    pub step: Option<String>,
    /// Latency limits (durations).
    #[serde(default)]
    pub p50: Option<String>,
    #[serde(default)]
    pub p95: Option<String>,
    #[serde(default)]
    pub p99: Option<String>,
    #[serde(default)]
    pub max: Option<String>,
    /// Highest accepted share of failed requests, 0.0–1.0.
    #[serde(default)]
    pub error_rate: Option<f64>,
    /// Stop the run as soon as this threshold fails (as k6's `abortOnFail`). Checked every
    /// second on the current load level — the samples of the shape's current step or stage
    /// (the whole run for a constant or arrival-rate shape) — once it has
    /// `min_samples`; a step shape then ends at the load the target could not take, and the
    /// report says when and at how many users. At the end of the run the threshold is also
    /// judged on the whole run, like any other.
    #[serde(default)]
    pub abort: bool,
    /// With `abort`: judge a level only once it has this many samples (default 20), so one
    /// early failure is not a 100 % error rate.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub min_samples: Option<u64>,
}

/// Which part of a user's life a step belongs to; stats keep them apart.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Setup,
    Tasks,
    Teardown,
}
