import AgentProtocol
import Testing

/// Every reply type reads back what it writes, and a reply with a missing or mistyped field
/// is a `bad-field` error that names the field.
@Suite struct AgentReplies {
  static let interface: InterfaceCounters = {
    var counters = InterfaceCounters(name: "eth0")
    counters.received = 12
    counters.dropped = 1
    counters.interfaceDropped = 2
    counters.written = 11
    counters.bytes = 4_321
    counters.outOfOrder = 3
    return counters
  }()

  static let status = StatusReply(
    session: "s-1", state: .stopped, packets: 11, bytes: 4_321,
    files: ["/r/sessions/s-1/capture-0001.pcapng"],
    interfaces: [interface, InterfaceCounters(name: "smc-dummy0001")], startedNanoseconds: 1_000,
    stoppedNanoseconds: 2_000, stopReason: .signal("SIGTERM"),
    captureError: AgentProtocolError(.diskFull, "full"))

  static let hello = HelloReply(
    agentVersion: "0.2.0", build: "dev", kernel: "6.1.0", hostname: "h1", libpcap: "libpcap 1.10.3",
    privileges: .init(root: false, netRaw: true, netAdmin: true), interfaces: ["eth0", "lo"],
    smcDump: .init(supported: false, detail: "no SMC_GEN_NETLINK"), root: "/var/lib/smcpair/agent")

  /// The reply written as the agent writes it, one field replaced (nil removes it).
  static func edited(_ reply: some AgentReply, _ key: String, _ value: JSONValue?) -> JSONValue {
    guard case .object(let fields) = reply.json else { return .null }
    if let value { return .object(fields.map { $0.0 == key ? (key, value) : $0 }) }
    return .object(fields.filter { $0.0 != key })
  }

  /// The message of the error reading `json` as `Reply`; nil when it reads.
  static func problem<Reply: AgentReply>(_ type: Reply.Type, _ json: JSONValue) -> AgentProtocolError? {
    do {
      _ = try Reply(json)
      return nil
    } catch {
      return error
    }
  }

  @Test func helloRoundTripsAndChecksTheProtocolVersionFirst() throws {
    let line = Self.hello.json.description
    #expect(try HelloReply(JSONValue.parse(line)) == Self.hello)
    #expect(Self.hello.json["privileges"]?["sufficient"]?.bool == true)
    let missing = Self.problem(HelloReply.self, Self.edited(Self.hello, "kernel", nil))
    #expect(missing?.code == .badField)
    #expect(missing?.message == "'kernel' is missing")
    let nested = Self.problem(
      HelloReply.self, Self.edited(Self.hello, "privileges", .object([("root", .bool(true))])))
    #expect(nested?.message == "'privileges.cap_net_raw' is missing")
    // An agent of protocol 1 is told as that, even though it lacks fields too.
    let old = Self.problem(
      HelloReply.self, .object([("protocol", .int(1)), ("agent_version", .string("0.1.0"))]))
    #expect(old?.code == .unsupportedVersion)
    #expect(old?.message == "the agent speaks protocol 1, smcpair speaks \(AgentProtocolVersion.current)")
  }

  @Test func prepareStartClockAndCleanupRoundTrip() throws {
    let prepare = PrepareReply(
      session: "s-1", folder: "/r/sessions/s-1", interfaces: ["eth0", "smc-dummy0001"], smcDump: "capturing x"
    )
    #expect(try PrepareReply(JSONValue.parse(prepare.json.description)) == prepare)
    #expect(
      Self.problem(PrepareReply.self, Self.edited(prepare, "folder", .int(3)))?.message
        == "'folder' is not a string")
    #expect(
      Self.problem(PrepareReply.self, Self.edited(prepare, "interfaces", .array([.string("a"), .null])))?
        .message
        == "'interfaces[1]' is not a string")

    let start = StartReply(startedNanoseconds: 17, files: ["/a.pcapng"])
    #expect(try StartReply(JSONValue.parse(start.json.description)) == start)
    #expect(
      Self.problem(StartReply.self, Self.edited(start, "started_ns", nil))?.message
        == "'started_ns' is missing")

    let clock = ClockReply(realtimeNanoseconds: 1_764_000_000_000_000_000, monotonicNanoseconds: 42)
    #expect(try ClockReply(JSONValue.parse(clock.json.description)) == clock)
    #expect(
      Self.problem(ClockReply.self, Self.edited(clock, "monotonic_ns", .string("42")))?.message
        == "'monotonic_ns' is not an integer")

    let cleanup = CleanupReply(removedDevices: ["smc-dummy0002"])
    #expect(try CleanupReply(JSONValue.parse(cleanup.json.description)) == cleanup)
    #expect(Self.problem(CleanupReply.self, .object([]))?.message == "'removed_devices' is missing")
  }

  @Test func statusRoundTripsWithPerInterfaceBytes() throws {
    let json = try JSONValue.parse(Self.status.json.description)
    #expect(try StatusReply(json) == Self.status)
    #expect(json["interfaces"]?.array?.first?["bytes"]?.int == 4_321)
    #expect(json["out_of_order"]?.int == 3)
    #expect(json["stop_reason"]?.string == "signal SIGTERM")
    #expect(Self.status.drops == 3)
    // Optional fields may be absent.
    let bare = StatusReply(session: "s", state: .prepared)
    #expect(try StatusReply(JSONValue.parse(bare.json.description)) == bare)
  }

  @Test func statusNamesTheBadField() {
    #expect(
      Self.problem(StatusReply.self, Self.edited(Self.status, "state", .string("dancing")))?.message
        == "'state' is 'dancing', not one of prepared, capturing, stopped, finalized")
    #expect(
      Self.problem(StatusReply.self, Self.edited(Self.status, "stop_reason", .string("bored")))?.message
        == "'stop_reason' is 'bored', which no agent writes")
    let interfaces = JSONValue.array([
      .object([
        ("name", .string("eth0")), ("received", .int(1)), ("dropped", .int(0)), ("if_dropped", .int(0)),
        ("written", .int(1)), ("out_of_order", .int(0)),
      ])
    ])
    let noBytes = Self.problem(StatusReply.self, Self.edited(Self.status, "interfaces", interfaces))
    #expect(noBytes?.code == .badField)
    #expect(noBytes?.message == "'interfaces[0].bytes' is missing")
    #expect(
      Self.problem(
        StatusReply.self, Self.edited(Self.status, "capture_error", .object([("code", .string("io"))])))?
        .message == "'capture_error.message' is missing")
    #expect(Self.problem(StatusReply.self, .array([]))?.message == "a reply must be a JSON object")
  }

  @Test func finalizeCarriesDigestsAndTheStatus() throws {
    var status = Self.status
    status.state = .finalized
    let finalize = FinalizeReply(
      files: [
        CaptureFileDigest(path: status.files[0], size: 4_096, sha256: String(repeating: "a", count: 64))
      ],
      status: status)
    let json = try JSONValue.parse(finalize.json.description)
    #expect(json["files"]?.array?.first?["sha256"]?.string == String(repeating: "a", count: 64))
    #expect(try FinalizeReply(json) == finalize)
    let noDigest = JSONValue.array([.object([("path", .string("/a")), ("size", .int(1))])])
    #expect(
      Self.problem(FinalizeReply.self, Self.edited(finalize, "files", noDigest))?.message
        == "'files[0].sha256' is missing")
    #expect(
      Self.problem(FinalizeReply.self, Self.edited(finalize, "packets", nil))?.message
        == "'packets' is missing")
  }

  @Test func errorRepliesAreReadStrictly() throws {
    let failed = try AgentResponse.parse(
      #"{"v":2,"id":3,"type":"prepare","ok":false,"error":{"code":"bad-filter","message":"syntax error"}}"#)
    #expect(failed.error == AgentProtocolError(.badFilter, "syntax error"))
    let error = AgentProtocolError(.diskFull, "no space")
    #expect(try AgentProtocolError(JSONValue.parse(error.json.description)) == error)
    #expect(throws: AgentProtocolError.self) {
      try AgentResponse.parse(#"{"v":2,"id":3,"ok":false,"error":{"message":"no code"}}"#)
    }
    #expect(throws: AgentProtocolError.self) { try AgentResponse.parse(#"{"v":2,"id":3,"ok":false}"#) }
    let ok = try AgentResponse.parse(#"{"v":2,"id":4,"type":"cleanup","ok":true,"removed_devices":[]}"#)
    #expect(try ok.reply(CleanupReply.self) == CleanupReply(removedDevices: []))
  }

  @Test func sharedEnumsKeepTheirWireText() {
    let reasons: [(StopReason, String)] = [
      (.requested, "stop requested"), (.durationReached, "duration reached"),
      (.packetCountReached, "packet count reached"), (.byteLimitReached, "byte limit reached"),
      (.fileSizeLimitReached, "file size limit reached"), (.stopped, "stopped"), (.error, "error"),
      (.signal("SIGHUP"), "signal SIGHUP"), (.controlConnectionClosed, "control connection closed"),
      (.finalizedThroughAttach, "finalized through attach"),
    ]
    for (reason, text) in reasons {
      #expect(reason.description == text)
      #expect(StopReason(text: text) == reason)
    }
    #expect(StopReason(text: "signal ") == nil)
    for text in ["auto", "required", "off", "smc-dummy0001"] {
      #expect(SMCDumpSetting(text).description == text)
    }
    #expect(SMCDumpSetting("lo").deviceName == "lo")
    #expect(SMCDumpSetting("off").deviceName == nil)
    #expect(CaptureState.allCases.map(\.rawValue) == ["prepared", "capturing", "stopped", "finalized"])
  }

  @Test func callsPairRequestsWithTheirReplyType() {
    #expect(AgentCall.status.type == .status)
    #expect(AgentCall.stop.type == .stop)
    #expect(AgentCall.finalize.type == .finalize)
    let plan = CapturePlan(session: "s", interfaces: ["eth0"], smcDump: .device("lo"))
    let prepare = AgentCall.prepare(plan)
    #expect(prepare.type == .prepare)
    #expect(prepare.fields.first { $0.0 == "smc_dump" }?.1 == .string("lo"))
  }
}
