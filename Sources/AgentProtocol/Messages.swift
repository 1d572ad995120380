// JSONValue lives in its own module (the timeline and the inventory writer quote with it too);
// every user of the protocol gets it with this import.
@_exported import JSON

/// The agent protocol: versioned JSON Lines over the agent's stdin/stdout (or its session
/// socket). One request per line, one response per line. See docs/agent-protocol.md.
public enum AgentProtocolVersion {
  public static let current: Int64 = 2
}

/// The requests the agent understands.
public enum RequestType: String, Sendable, CaseIterable {
  case hello, prepare, start, status, stop, finalize, clock, cleanup
}

/// A protocol-level problem, answered as an error response (the agent never crashes on input).
public struct AgentProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
  public struct Code: RawRepresentable, Hashable, Sendable {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public static let malformed = Code(rawValue: "malformed")
    public static let unsupportedVersion = Code(rawValue: "unsupported-version")
    public static let unknownType = Code(rawValue: "unknown-type")
    public static let badField = Code(rawValue: "bad-field")
    public static let outOfOrder = Code(rawValue: "out-of-order")
    public static let badFilter = Code(rawValue: "bad-filter")
    public static let capture = Code(rawValue: "capture")
    public static let privileges = Code(rawValue: "privileges")
    public static let smcDumpUnsupported = Code(rawValue: "smc-dump-unsupported")
    public static let diskFull = Code(rawValue: "disk-full")
    public static let io = Code(rawValue: "io")
  }

  public var code: Code
  public var message: String

  public init(_ code: Code, _ message: String) {
    self.code = code
    self.message = message
  }

  public var description: String { "\(code.rawValue): \(message)" }
}

/// One request line.
public struct AgentRequest: Sendable {
  public var id: Int64
  public var type: RequestType
  /// The whole request object (fields of the request type are read from it).
  public var body: JSONValue

  public init(id: Int64, type: RequestType, fields: [(String, JSONValue)] = []) {
    self.id = id
    self.type = type
    body = .object(
      [("v", .int(AgentProtocolVersion.current)), ("id", .int(id)), ("type", .string(type.rawValue))] + fields
    )
  }

  /// Parses a request line. The error carries the request id when one could be read.
  public static func parse(_ line: String) throws(RequestParseError) -> AgentRequest {
    let value: JSONValue
    do {
      value = try JSONValue.parse(line)
    } catch {
      throw RequestParseError(
        id: nil, error: AgentProtocolError(.malformed, "\(error.description); send one JSON object per line"))
    }
    guard case .object = value else {
      throw RequestParseError(
        id: nil, error: AgentProtocolError(.malformed, "a request must be a JSON object"))
    }
    let id = value["id"]?.int
    guard let version = value["v"]?.int else {
      throw RequestParseError(id: id, error: AgentProtocolError(.malformed, "missing protocol version 'v'"))
    }
    guard version == AgentProtocolVersion.current else {
      throw RequestParseError(
        id: id,
        error: AgentProtocolError(
          .unsupportedVersion,
          "protocol version \(version) is not supported; this agent speaks \(AgentProtocolVersion.current) (deploy a matching agent)"
        ))
    }
    guard let id else {
      throw RequestParseError(id: nil, error: AgentProtocolError(.malformed, "missing integer 'id'"))
    }
    guard let typeName = value["type"]?.string else {
      throw RequestParseError(id: id, error: AgentProtocolError(.malformed, "missing 'type'"))
    }
    guard let type = RequestType(rawValue: typeName) else {
      throw RequestParseError(
        id: id,
        error: AgentProtocolError(
          .unknownType,
          "unknown request type '\(typeName)'; known: \(RequestType.allCases.map(\.rawValue).joined(separator: ", "))"
        ))
    }
    return AgentRequest(id: id, type: type, value: value)
  }

  init(id: Int64, type: RequestType, value: JSONValue) {
    self.id = id
    self.type = type
    body = value
  }

  public var line: String { body.description }
}

/// A request and the reply type it gets: `agent.call(.status)` is a `StatusReply`.
public struct AgentCall<Reply: AgentReply>: Sendable {
  public var type: RequestType
  public var fields: [(String, JSONValue)]

  init(_ type: RequestType, _ fields: [(String, JSONValue)] = []) {
    self.type = type
    self.fields = fields
  }
}

extension AgentCall where Reply == HelloReply {
  public static var hello: Self { Self(.hello) }
}

extension AgentCall where Reply == PrepareReply {
  public static func prepare(_ plan: CapturePlan) -> Self { Self(.prepare, plan.fields) }
}

extension AgentCall where Reply == StartReply {
  public static var start: Self { Self(.start) }
}

extension AgentCall where Reply == StatusReply {
  public static var status: Self { Self(.status) }
  /// `stop` answers with the status after stopping.
  public static var stop: Self { Self(.stop) }
}

extension AgentCall where Reply == FinalizeReply {
  public static var finalize: Self { Self(.finalize) }
}

extension AgentCall where Reply == ClockReply {
  public static var clock: Self { Self(.clock) }
}

extension AgentCall where Reply == CleanupReply {
  public static var cleanup: Self { Self(.cleanup) }
}

public struct RequestParseError: Error, Sendable {
  public var id: Int64?
  public var error: AgentProtocolError
}

/// One response line.
public struct AgentResponse: Sendable {
  public var id: Int64?
  public var type: String?
  public var ok: Bool
  public var fields: [(String, JSONValue)]
  public var error: AgentProtocolError?

  public static func success(_ request: AgentRequest, _ reply: some AgentReply) -> AgentResponse {
    guard case .object(let fields) = reply.json else {
      return failure(
        id: request.id, type: request.type.rawValue, AgentProtocolError(.io, "reply is not an object"))
    }
    return AgentResponse(id: request.id, type: request.type.rawValue, ok: true, fields: fields, error: nil)
  }

  public static func failure(id: Int64?, type: String?, _ error: AgentProtocolError) -> AgentResponse {
    AgentResponse(id: id, type: type, ok: false, fields: [], error: error)
  }

  public var json: JSONValue {
    var fields: [(String, JSONValue)] = [("v", .int(AgentProtocolVersion.current))]
    fields.append(("id", id.map(JSONValue.int) ?? .null))
    if let type { fields.append(("type", .string(type))) }
    fields.append(("ok", .bool(ok)))
    if let error { fields.append(("error", error.json)) }
    return .object(fields + self.fields)
  }

  public var line: String { json.description }

  /// Parses a response line (the coordinator's side).
  public static func parse(_ line: String) throws(AgentProtocolError) -> AgentResponse {
    let value: JSONValue
    do {
      value = try JSONValue.parse(line)
    } catch {
      throw AgentProtocolError(.malformed, "agent sent invalid JSON: \(error.description)")
    }
    guard case .object(let all) = value, let ok = value["ok"]?.bool else {
      throw AgentProtocolError(.malformed, "agent response without 'ok'")
    }
    // A failed reply must say why: its error object is read as strictly as any reply.
    let error = ok ? nil : try AgentProtocolError(value["error"] ?? .null)
    let reserved: Set<String> = ["v", "id", "type", "ok", "error"]
    return AgentResponse(
      id: value["id"]?.int, type: value["type"]?.string, ok: ok,
      fields: all.filter { !reserved.contains($0.0) },
      error: error)
  }

  public subscript(key: String) -> JSONValue? { fields.first { $0.0 == key }?.1 }

  /// The reply's fields as `Reply`, every field checked.
  public func reply<Reply: AgentReply>(_ type: Reply.Type = Reply.self) throws(AgentProtocolError) -> Reply {
    try Reply(.object(fields))
  }
}

/// When a capture stops by itself.
public struct StopConditions: Sendable, Equatable {
  public var durationSeconds: Double?
  public var packets: Int64?
  public var bytes: Int64?
  /// Stop when the current file reaches this size (without rotation).
  public var maxFileBytes: Int64?

  public init(
    durationSeconds: Double? = nil, packets: Int64? = nil, bytes: Int64? = nil, maxFileBytes: Int64? = nil
  ) {
    self.durationSeconds = durationSeconds
    self.packets = packets
    self.bytes = bytes
    self.maxFileBytes = maxFileBytes
  }
}

/// What to capture: the `prepare` request's fields.
public struct CapturePlan: Sendable, Equatable {
  public var session: String
  public var interfaces: [String]
  public var filter: String
  /// Filter for the SMC dump device; nil uses `filter` there too. Dump records are UDP frames
  /// carrying the SMC connection's addresses and ports, so a `tcp port N` filter would drop
  /// them all (the coordinator sends `udp port N`).
  public var dumpFilter: String?
  public var snaplen: Int
  public var bufferBytes: Int
  public var stop: StopConditions
  /// Start a new file when the current one reaches this size.
  public var rotateBytes: Int64?
  /// `auto`, `required`, `off`, or an existing device to capture.
  public var smcDump: SMCDumpSetting
  /// Which dump records to keep: data, CDC, or both (`smc_type`, default `all`).
  public var smcType: SMCRecordType
  /// The NICs and the dump device, or the dump device only (of one SMC mode) (`smc_mode`,
  /// default `all`).
  public var smcMode: SMCCaptureMode
  /// Bytes of each data record kept after its dump header (`data_snaplen`); nil keeps them
  /// whole. CDC records and NIC packets are never cut by it.
  public var dataSnaplen: Int?

  /// Limits applied when the plan sets none, so no capture runs forever or fills a disk.
  public static let defaultMaxDuration: Double = 3600
  public static let defaultMaxBytes: Int64 = 2 << 30

  public init(
    session: String, interfaces: [String], filter: String = "", snaplen: Int = 262_144,
    bufferBytes: Int = 32 << 20, stop: StopConditions = StopConditions(), rotateBytes: Int64? = nil,
    smcDump: SMCDumpSetting = .auto, dumpFilter: String? = nil, smcType: SMCRecordType = .all,
    smcMode: SMCCaptureMode = .all, dataSnaplen: Int? = nil
  ) {
    self.session = session
    self.interfaces = interfaces
    self.filter = filter
    self.dumpFilter = dumpFilter
    self.snaplen = snaplen
    self.bufferBytes = bufferBytes
    self.stop = stop
    self.rotateBytes = rotateBytes
    self.smcDump = smcDump
    self.smcType = smcType
    self.smcMode = smcMode
    self.dataSnaplen = dataSnaplen
  }

  /// Largest `data_snaplen`: the dump header's `len` field is 16 bits.
  public static let maxDataSnaplen = 65535

  /// Whether dump records are chosen or cut at all (else the dump device is captured as is).
  public var selectsDumpRecords: Bool {
    smcType != .all || smcMode == .smcr || smcMode == .smcd || dataSnaplen != nil
  }

  public var fields: [(String, JSONValue)] {
    var stopFields: [(String, JSONValue)] = []
    if let d = stop.durationSeconds { stopFields.append(("duration_s", .double(d))) }
    if let p = stop.packets { stopFields.append(("packets", .int(p))) }
    if let b = stop.bytes { stopFields.append(("bytes", .int(b))) }
    if let m = stop.maxFileBytes { stopFields.append(("max_file_bytes", .int(m))) }
    var out: [(String, JSONValue)] = [
      ("session", .string(session)), ("interfaces", .array(interfaces.map(JSONValue.string))),
      ("filter", .string(filter)), ("snaplen", .int(Int64(snaplen))),
      ("buffer_bytes", .int(Int64(bufferBytes))),
      ("stop", .object(stopFields)), ("smc_dump", .string(smcDump.description)),
    ]
    if let rotateBytes { out.append(("rotate_bytes", .int(rotateBytes))) }
    if let dumpFilter { out.append(("dump_filter", .string(dumpFilter))) }
    // Written only when set, so a plan without them reads the same to every agent.
    if smcType != .all { out.append(("smc_type", .string(smcType.rawValue))) }
    if smcMode != .all { out.append(("smc_mode", .string(smcMode.rawValue))) }
    if let dataSnaplen { out.append(("data_snaplen", .int(Int64(dataSnaplen)))) }
    return out
  }

  /// Reads a plan from a `prepare` request, checking every field.
  public init(_ body: JSONValue) throws(AgentProtocolError) {
    func bad(_ field: String, _ what: String) -> AgentProtocolError {
      AgentProtocolError(.badField, "'\(field)' \(what)")
    }
    guard let session = body["session"]?.string, Self.validSession(session) else {
      throw bad("session", "must be 1-64 letters, digits, '-', '_' or '.' (it names the session folder)")
    }
    guard let list = body["interfaces"]?.array, !list.isEmpty,
      let interfaces = Optional(list.compactMap(\.string)), interfaces.count == list.count,
      interfaces.allSatisfy({ !$0.isEmpty && $0.count <= 15 && !$0.contains("/") })
    else {
      throw bad("interfaces", "must be a non-empty list of interface names")
    }
    self.session = session
    self.interfaces = interfaces
    filter = body["filter"]?.string ?? ""
    dumpFilter = body["dump_filter"]?.string
    snaplen = Int(body["snaplen"]?.int ?? 262_144)
    guard (64...262_144).contains(snaplen) else { throw bad("snaplen", "must be 64...262144") }
    bufferBytes = Int(body["buffer_bytes"]?.int ?? (32 << 20))
    guard (1 << 20...1 << 30).contains(bufferBytes) else {
      throw bad("buffer_bytes", "must be 1 MiB...1 GiB")
    }
    let stopValue = body["stop"] ?? .object([])
    stop = StopConditions(
      durationSeconds: stopValue["duration_s"]?.double, packets: stopValue["packets"]?.int,
      bytes: stopValue["bytes"]?.int, maxFileBytes: stopValue["max_file_bytes"]?.int)
    if let d = stop.durationSeconds, !(d > 0) { throw bad("stop.duration_s", "must be positive") }
    if let p = stop.packets, p <= 0 { throw bad("stop.packets", "must be positive") }
    if let b = stop.bytes, b <= 0 { throw bad("stop.bytes", "must be positive") }
    if let m = stop.maxFileBytes, m < 4096 { throw bad("stop.max_file_bytes", "must be at least 4096") }
    rotateBytes = body["rotate_bytes"]?.int
    if let r = rotateBytes, r < 65536 { throw bad("rotate_bytes", "must be at least 65536") }
    smcDump = SMCDumpSetting(body["smc_dump"]?.string ?? "auto")
    smcType = try Self.choice(body, "smc_type", flag: "--smc-type", default: .all)
    smcMode = try Self.choice(body, "smc_mode", flag: "--smc-mode", default: .all)
    if let field = body["data_snaplen"], !field.isNull {
      guard let n = field.int, (0...Int64(Self.maxDataSnaplen)).contains(n) else {
        throw bad(
          "data_snaplen",
          "(--data-snaplen) must be an integer 0...\(Self.maxDataSnaplen): the bytes of each data record kept after its dump header"
        )
      }
      dataSnaplen = Int(n)
    } else {
      dataSnaplen = nil
    }
    if !smcMode.capturesNICs && smcDump == .off {
      throw bad(
        "smc_mode",
        "'\(smcMode.rawValue)' (--smc-mode) captures only the SMC dump device, but 'smc_dump' is 'off'")
    }
  }

  /// A string field that must be one of `Value`'s cases; absent is `fallback`.
  static func choice<Value: RawRepresentable & CaseIterable>(
    _ body: JSONValue, _ field: String, flag: String, default fallback: Value
  ) throws(AgentProtocolError) -> Value where Value.RawValue == String {
    guard let value = body[field], !value.isNull else { return fallback }
    guard let text = value.string, let known = Value(rawValue: text) else {
      throw AgentProtocolError(
        .badField,
        "'\(field)' (\(flag)) is \(value.string.map { "'\($0)'" } ?? value.description), not one of \(Value.allCases.map(\.rawValue).joined(separator: ", "))"
      )
    }
    return known
  }

  public static func validSession(_ name: String) -> Bool {
    !name.isEmpty && name.count <= 64 && name != "." && name != ".."
      && name.unicodeScalars.allSatisfy {
        ($0.value >= 48 && $0.value <= 57) || ($0.value >= 65 && $0.value <= 90)
          || ($0.value >= 97 && $0.value <= 122)
          || $0 == "-" || $0 == "_" || $0 == "."
      }
  }
}
