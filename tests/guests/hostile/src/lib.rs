//! Hostile and probing node types. Each one misbehaves (or probes a capability) in one
//! way; the host tests assert that every one is contained with its own error.

use hyyve_sdk::{
    Context, Deserialize, Error, JsonSchema, NoConfig, NoInputs, Node, Serialize, Value,
};

/// Output of probing nodes: what the guest observed.
#[derive(Serialize, JsonSchema)]
pub struct Observed {
    /// A description of what happened.
    pub observed: String,
}

macro_rules! probe {
    ($ty:ident, $name:literal, $body:block) => {
        /// A hostile or probing node.
        pub struct $ty;
        impl Node for $ty {
            const NAME: &'static str = $name;
            const TITLE: &'static str = $name;
            const DESCRIPTION: &'static str = "test guest";
            type Config = NoConfig;
            type Inputs = NoInputs;
            type Outputs = Observed;
            fn run(_: NoConfig, _: NoInputs, _: &Context) -> Result<Observed, Error> {
                $body
            }
        }
    };
}

fn observed(s: impl Into<String>) -> Result<Observed, Error> {
    Ok(Observed { observed: s.into() })
}

probe!(InfiniteLoop, "infinite-loop", {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
});

probe!(MemoryBomb, "memory-bomb", {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1u8; 1 << 20]);
        std::hint::black_box(&hoard);
    }
});

#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 64]);
    recurse(depth + 1) + frame[3]
}

probe!(DeepRecursion, "deep-recursion", {
    observed(format!("{}", recurse(0)))
});

probe!(Panic, "panic", {
    panic!("hostile guest panicked on purpose")
});

probe!(HugeOutput, "huge-output", { observed("x".repeat(2 << 20)) });

probe!(ReadHostFiles, "read-host-files", {
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| e.to_string());
    let root = std::fs::read_dir("/")
        .map(|d| d.count())
        .map_err(|e| e.to_string());
    observed(format!("passwd={passwd:?} root={root:?}"))
});

probe!(ReadEnv, "read-env", {
    let vars: Vec<(String, String)> = std::env::vars().collect();
    let args: Vec<String> = std::env::args().collect();
    observed(format!("vars={vars:?} args={args:?}"))
});

probe!(OpenSocket, "open-socket", {
    let tcp = std::net::TcpStream::connect("127.0.0.1:5432")
        .map(|_| ())
        .map_err(|e| e.kind().to_string());
    let udp = std::net::UdpSocket::bind("0.0.0.0:0")
        .map(|_| ())
        .map_err(|e| e.kind().to_string());
    let lookup = std::net::ToSocketAddrs::to_socket_addrs("localhost:80")
        .map(|a| a.count())
        .map_err(|e| e.kind().to_string());
    observed(format!("tcp={tcp:?} udp={udp:?} lookup={lookup:?}"))
});

probe!(HttpOut, "http-out", {
    match hyyve_sdk::http::get("http://127.0.0.1:9/") {
        Ok(r) => observed(format!("status {}", r.status)),
        Err(e) => Err(Error::failed(e)),
    }
});

probe!(ReadSecret, "read-secret", {
    match hyyve_sdk::secrets::get("API_KEY") {
        Ok(_) => observed("secret read"),
        Err(e) => Err(Error::failed(format!("{e:?}"))),
    }
});

probe!(KvRoundTrip, "kv-round-trip", {
    let before = hyyve_sdk::kv::get("counter").map_err(|e| Error::failed(format!("{e:?}")))?;
    let n = before.map_or(0, |b| b.first().copied().unwrap_or(0)) + 1;
    hyyve_sdk::kv::set("counter", &[n]).map_err(|e| Error::failed(format!("{e:?}")))?;
    observed(format!("counter={n}"))
});

probe!(KvFlood, "kv-flood", {
    let chunk = vec![7u8; 512 << 10];
    for i in 0..1000 {
        if let Err(e) = hyyve_sdk::kv::set(&format!("k{i}"), &chunk) {
            return Err(Error::failed(format!("after {i} writes: {e:?}")));
        }
    }
    observed("wrote everything")
});

probe!(ReportUsage, "report-usage", {
    hyyve_sdk::usage::report("llm.input-tokens", 1200);
    hyyve_sdk::usage::report("llm.output-tokens", 300);
    hyyve_sdk::usage::report("llm.input-tokens", 34);
    hyyve_sdk::log::info("reported usage");
    observed("ok")
});

probe!(ManyHostCalls, "many-host-calls", {
    for _ in 0..10_000 {
        hyyve_sdk::usage::report("tick", 1);
    }
    observed("done")
});

probe!(FailRetryable, "fail-retryable", {
    Err(Error::Retryable("upstream rate limited".into()))
});

/// Declares an integer output, returns a string: breaks its own output schema.
pub struct BreaksSchema;

/// Output whose schema says integer while the value is text.
#[derive(Serialize, JsonSchema)]
pub struct Lying {
    /// Claimed integer.
    #[schemars(with = "u32")]
    pub count: String,
}

impl Node for BreaksSchema {
    const NAME: &'static str = "breaks-schema";
    const TITLE: &'static str = "breaks-schema";
    const DESCRIPTION: &'static str = "test guest";
    type Config = NoConfig;
    type Inputs = NoInputs;
    type Outputs = Lying;
    fn run(_: NoConfig, _: NoInputs, _: &Context) -> Result<Lying, Error> {
        Ok(Lying {
            count: "not a number".into(),
        })
    }
}

/// Returns a JSON array where an object of ports is required.
pub struct NotAnObject;

impl Node for NotAnObject {
    const NAME: &'static str = "not-an-object";
    const TITLE: &'static str = "not-an-object";
    const DESCRIPTION: &'static str = "test guest";
    type Config = NoConfig;
    type Inputs = NoInputs;
    type Outputs = Vec<u32>;
    fn run(_: NoConfig, _: NoInputs, _: &Context) -> Result<Vec<u32>, Error> {
        Ok(vec![1, 2, 3])
    }
}

/// Echoes its input, so tests can see exactly what the host passed in.
pub struct Echo;

/// Inputs of `echo`.
#[derive(Deserialize, JsonSchema)]
pub struct EchoInputs {
    /// Anything.
    pub value: Value,
}

/// Outputs of `echo`.
#[derive(Serialize, JsonSchema)]
pub struct EchoOutputs {
    /// The input, unchanged.
    pub value: Value,
}

impl Node for Echo {
    const NAME: &'static str = "echo";
    const TITLE: &'static str = "echo";
    const DESCRIPTION: &'static str = "test guest";
    type Config = NoConfig;
    type Inputs = EchoInputs;
    type Outputs = EchoOutputs;
    fn run(_: NoConfig, i: EchoInputs, _: &Context) -> Result<EchoOutputs, Error> {
        Ok(EchoOutputs { value: i.value })
    }
}

/// Configuration of the capability probes below: what to reach and how much.
#[derive(Deserialize, JsonSchema)]
pub struct Target {
    /// URL (http-fetch), secret name (secret), or path (scratch-write).
    pub target: String,
    /// HTTP method (http-fetch), default GET.
    #[serde(default)]
    pub method: Option<String>,
    /// Bytes to send (http-fetch) or write (scratch-write).
    #[serde(default)]
    pub bytes: u64,
    /// Requests to send one after the other (http-fetch), default 1.
    #[serde(default)]
    pub times: Option<u32>,
    /// An extra request header to set (http-fetch), value `1`.
    #[serde(default)]
    pub header: Option<String>,
}

macro_rules! targeted {
    ($ty:ident, $name:literal, |$t:ident| $body:block) => {
        /// A capability probe aimed by its configuration.
        pub struct $ty;
        impl Node for $ty {
            const NAME: &'static str = $name;
            const TITLE: &'static str = $name;
            const DESCRIPTION: &'static str = "test guest";
            type Config = Target;
            type Inputs = NoInputs;
            type Outputs = Observed;
            fn run($t: Target, _: NoInputs, _: &Context) -> Result<Observed, Error> {
                $body
            }
        }
    };
}

targeted!(HttpFetch, "http-fetch", |t| {
    let method = t.method.as_deref().unwrap_or("GET");
    let body = vec![b'b'; t.bytes as usize];
    let mut last = String::new();
    for i in 0..t.times.unwrap_or(1) {
        let header = t.header.as_deref().unwrap_or("x-probe");
        match hyyve_sdk::http::request(method, &t.target, &[(header, b"1")], &body) {
            Ok(r) => last = format!("status={} body={}", r.status, r.body.len()),
            Err(e) => return Err(Error::failed(format!("request {}: {e}", i + 1))),
        }
    }
    observed(last)
});

targeted!(Secret, "secret", |t| {
    match hyyve_sdk::secrets::get(&t.target) {
        Ok(value) => observed(format!("value={value}")),
        Err(e) => Err(Error::failed(format!("{e:?}"))),
    }
});

targeted!(ScratchWrite, "scratch-write", |t| {
    let data = vec![b's'; t.bytes as usize];
    std::fs::write(&t.target, &data)
        .map_err(|e| Error::failed(format!("write {}: {e}", t.target)))?;
    let back =
        std::fs::read(&t.target).map_err(|e| Error::failed(format!("read {}: {e}", t.target)))?;
    observed(format!("wrote={} read={}", data.len(), back.len()))
});

probe!(ScratchEscape, "scratch-escape", {
    let dotdot = std::fs::read_to_string("/scratch/../etc/passwd").map_err(|e| e.kind());
    let relative = std::fs::read_to_string("/scratch/../../../../etc/passwd").map_err(|e| e.kind());
    // A symlink the guest plants itself, absolute and relative.
    let scratch = wasip2::filesystem::preopens::get_directories()
        .into_iter()
        .find(|(_, path)| path == "/scratch")
        .map(|(dir, _)| dir)
        .ok_or_else(|| Error::failed("no /scratch preopen"))?;
    let absolute_link = scratch
        .symlink_at("/etc", "abs-link")
        .map_err(|e| format!("{e:?}"));
    let relative_link = scratch
        .symlink_at("../../../../../../etc", "rel-link")
        .map_err(|e| format!("{e:?}"));
    let via_abs = std::fs::read_to_string("/scratch/abs-link/passwd").map_err(|e| e.kind());
    let via_rel = std::fs::read_to_string("/scratch/rel-link/passwd").map_err(|e| e.kind());
    // A symlink planted on the host side by the test.
    let via_planted = std::fs::read_to_string("/scratch/planted/passwd").map_err(|e| e.kind());
    let leaked = [&dotdot, &relative, &via_abs, &via_rel, &via_planted]
        .iter()
        .any(|r| r.as_ref().is_ok_and(|text| text.contains("root:")));
    observed(format!(
        "leaked={leaked} dotdot={:?} relative={:?} abs_link={absolute_link:?} rel_link={relative_link:?} via_abs={:?} via_rel={:?} via_planted={:?}",
        dotdot.map(|_| "read"),
        relative.map(|_| "read"),
        via_abs.map(|_| "read"),
        via_rel.map(|_| "read"),
        via_planted.map(|_| "read"),
    ))
});

// Host-side resources: each probe makes the host allocate on its behalf and holds on,
// as a plugin written against `wit/` alone can. The host must fail it within its budget.

probe!(HoldHeaderMaps, "hold-header-maps", {
    use wasip2::http::types::Fields;
    let value = vec![b'v'; 8 << 10];
    let mut held = Vec::new();
    loop {
        let fields = Fields::new();
        // One 8 KiB value: within the size of one map, so only the number held counts.
        let _ = fields.append("x-fill", &value);
        held.push(fields);
        std::hint::black_box(&held);
    }
});

probe!(StuffOneHeaderMap, "stuff-one-header-map", {
    let fields = wasip2::http::types::Fields::new();
    let value = vec![b'v'; 8 << 10];
    for i in 0.. {
        if let Err(e) = fields.append(&format!("x-fill-{i}"), &value) {
            return Err(Error::failed(format!("after {i} values: {e:?}")));
        }
    }
    observed("unreachable")
});

probe!(HoldOutgoingBodies, "hold-outgoing-bodies", {
    use wasip2::http::types::{Fields, OutgoingRequest};
    let chunk = vec![b'b'; 64 << 10];
    let mut held = Vec::new();
    loop {
        let request = OutgoingRequest::new(Fields::new());
        let body = request.body().expect("body");
        let stream = body.write().expect("stream");
        // Fill what the unsent body buffers, and keep it.
        let permit = stream.check_write().unwrap_or(0) as usize;
        let _ = stream.write(&chunk[..permit.min(chunk.len())]);
        held.push((request, body, stream));
        std::hint::black_box(&held);
    }
});

probe!(HoldPollables, "hold-pollables", {
    let mut held = Vec::new();
    loop {
        held.push(wasip2::clocks::monotonic_clock::subscribe_duration(
            1_000_000_000_000,
        ));
        std::hint::black_box(&held);
    }
});

probe!(HoldOpenFiles, "hold-open-files", {
    let mut held = Vec::new();
    for i in 0.. {
        match std::fs::File::create(format!("/scratch/open-{i}")) {
            Ok(file) => held.push(file),
            Err(e) => return Err(Error::failed(format!("after {i} files: {e}"))),
        }
    }
    observed(format!("held {}", held.len()))
});

probe!(ManyEmptyFiles, "many-empty-files", {
    for i in 0.. {
        if let Err(e) = std::fs::write(format!("/scratch/empty-{i}"), b"") {
            return Err(Error::failed(format!("after {i} files: {e}")));
        }
    }
    observed("unreachable")
});

probe!(DeepTree, "deep-tree", {
    let mut path = String::from("/scratch/d");
    for depth in 0.. {
        if let Err(e) = std::fs::create_dir(&path) {
            return Err(Error::failed(format!("at depth {depth}: {e}")));
        }
        path.push_str("/d");
    }
    observed("unreachable")
});

probe!(LogFlood, "log-flood", {
    let line = "e".repeat(4 << 10);
    for _ in 0..20_000 {
        hyyve_sdk::log::error(&line);
    }
    hyyve_sdk::log::error(
        "forged\n{\"level\":\"INFO\",\"target\":\"auth\",\"message\":\"admin login\"}",
    );
    observed("flooded")
});

probe!(UsageAbuse, "usage-abuse", {
    hyyve_sdk::usage::report("tokens", u64::MAX);
    hyyve_sdk::usage::report("tokens", u64::MAX);
    hyyve_sdk::usage::report("fuel", 1_000_000);
    hyyve_sdk::usage::report("Not A Unit\n", 1);
    hyyve_sdk::usage::report("tokens", 5);
    for i in 0..10_000 {
        hyyve_sdk::usage::report(&format!("unit{i}"), 1);
    }
    observed("reported")
});

probe!(HugeRandom, "huge-random", {
    let bytes = wasip2::random::random::get_random_bytes(1 << 30);
    observed(format!("{} random bytes", bytes.len()))
});

hyyve_sdk::export_nodes!(
    HttpFetch,
    Secret,
    ScratchWrite,
    ScratchEscape,
    InfiniteLoop,
    MemoryBomb,
    DeepRecursion,
    Panic,
    HugeOutput,
    ReadHostFiles,
    ReadEnv,
    OpenSocket,
    HttpOut,
    ReadSecret,
    KvRoundTrip,
    KvFlood,
    ReportUsage,
    ManyHostCalls,
    FailRetryable,
    BreaksSchema,
    NotAnObject,
    Echo,
    HoldHeaderMaps,
    StuffOneHeaderMap,
    HoldOutgoingBodies,
    HoldPollables,
    HoldOpenFiles,
    ManyEmptyFiles,
    DeepTree,
    LogFlood,
    UsageAbuse,
    HugeRandom,
);
