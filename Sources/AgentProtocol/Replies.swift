/// One successful reply's fields (the envelope `v`, `id`, `type`, `ok` aside): read with
/// every field checked, written back as the agent sends it.
public protocol AgentReply: Sendable {
  /// Reads the reply; a missing or mistyped field is a `bad-field` error naming it.
  init(_ json: JSONValue) throws(AgentProtocolError)
  /// The reply's fields as one JSON object.
  var json: JSONValue { get }
}

/// `hello`: who the agent is and what this host allows.
public struct HelloReply: AgentReply, Equatable {
  /// Root and the two capabilities capture needs.
  public struct Privileges: Sendable, Equatable {
    public var root: Bool
    public var netRaw: Bool
    public var netAdmin: Bool
    public var sufficient: Bool { root || (netRaw && netAdmin) }

    public init(root: Bool, netRaw: Bool, netAdmin: Bool) {
      self.root = root
      self.netRaw = netRaw
      self.netAdmin = netAdmin
    }
  }

  /// Whether the kernel can mirror SMC traffic to a dump device, and why (not).
  public struct SMCDumpSupport: Sendable, Equatable {
    public var supported: Bool
    public var detail: String

    public init(supported: Bool, detail: String) {
      self.supported = supported
      self.detail = detail
    }
  }

  public var agentVersion: String
  public var protocolVersion: Int64
  public var build: String
  public var kernel: String
  public var hostname: String
  public var libpcap: String
  public var privileges: Privileges
  public var interfaces: [String]
  public var smcDump: SMCDumpSupport
  /// The agent's state folder.
  public var root: String

  public init(
    agentVersion: String, protocolVersion: Int64 = AgentProtocolVersion.current, build: String,
    kernel: String,
    hostname: String, libpcap: String, privileges: Privileges, interfaces: [String], smcDump: SMCDumpSupport,
    root: String
  ) {
    self.agentVersion = agentVersion
    self.protocolVersion = protocolVersion
    self.build = build
    self.kernel = kernel
    self.hostname = hostname
    self.libpcap = libpcap
    self.privileges = privileges
    self.interfaces = interfaces
    self.smcDump = smcDump
    self.root = root
  }

  /// The protocol version is read first: an agent of another version is told as that, not
  /// as whichever field it lacks.
  public init(_ json: JSONValue) throws(AgentProtocolError) {
    let fields = try ReplyFields(json)
    protocolVersion = try fields.int("protocol")
    guard protocolVersion == AgentProtocolVersion.current else {
      throw AgentProtocolError(
        .unsupportedVersion,
        "the agent speaks protocol \(protocolVersion), smcpair speaks \(AgentProtocolVersion.current)")
    }
    agentVersion = try fields.string("agent_version")
    build = try fields.string("build")
    kernel = try fields.string("kernel")
    hostname = try fields.string("hostname")
    libpcap = try fields.string("libpcap")
    let privileges = try fields.object("privileges")
    self.privileges = Privileges(
      root: try privileges.bool("root"), netRaw: try privileges.bool("cap_net_raw"),
      netAdmin: try privileges.bool("cap_net_admin"))
    interfaces = try fields.strings("interfaces")
    let dump = try fields.object("smc_dump")
    smcDump = SMCDumpSupport(supported: try dump.bool("supported"), detail: try dump.string("detail"))
    root = try fields.string("root")
  }

  public var json: JSONValue {
    .object([
      ("agent_version", .string(agentVersion)), ("protocol", .int(protocolVersion)),
      ("build", .string(build)),
      ("kernel", .string(kernel)), ("hostname", .string(hostname)), ("libpcap", .string(libpcap)),
      (
        "privileges",
        .object([
          ("root", .bool(privileges.root)), ("cap_net_raw", .bool(privileges.netRaw)),
          ("cap_net_admin", .bool(privileges.netAdmin)), ("sufficient", .bool(privileges.sufficient)),
        ])
      ),
      ("interfaces", .array(interfaces.map(JSONValue.string))),
      ("smc_dump", .object([("supported", .bool(smcDump.supported)), ("detail", .string(smcDump.detail))])),
      ("root", .string(root)),
    ])
  }
}

/// `prepare`: the session is set up; what will be captured.
public struct PrepareReply: AgentReply, Equatable {
  public var session: String
  public var folder: String
  /// What will be captured, the dump device included.
  public var interfaces: [String]
  /// What was decided about the SMC dump device, and why.
  public var smcDump: String

  public init(session: String, folder: String, interfaces: [String], smcDump: String) {
    self.session = session
    self.folder = folder
    self.interfaces = interfaces
    self.smcDump = smcDump
  }

  public init(_ json: JSONValue) throws(AgentProtocolError) {
    let fields = try ReplyFields(json)
    session = try fields.string("session")
    folder = try fields.string("folder")
    interfaces = try fields.strings("interfaces")
    smcDump = try fields.string("smc_dump")
  }

  public var json: JSONValue {
    .object([
      ("session", .string(session)), ("folder", .string(folder)),
      ("interfaces", .array(interfaces.map(JSONValue.string))), ("smc_dump", .string(smcDump)),
    ])
  }
}

/// `start`: capturing since `startedNanoseconds`, into `files`.
public struct StartReply: AgentReply, Equatable {
  public var startedNanoseconds: Int64
  public var files: [String]

  public init(startedNanoseconds: Int64, files: [String]) {
    self.startedNanoseconds = startedNanoseconds
    self.files = files
  }

  public init(_ json: JSONValue) throws(AgentProtocolError) {
    let fields = try ReplyFields(json)
    startedNanoseconds = try fields.int("started_ns")
    files = try fields.strings("files")
  }

  public var json: JSONValue {
    .object([("started_ns", .int(startedNanoseconds)), ("files", .array(files.map(JSONValue.string)))])
  }
}

/// The counters of one captured interface.
public struct InterfaceCounters: Sendable, Equatable {
  public var name: String
  /// Packets libpcap received (all handles of the interface).
  public var received: UInt64 = 0
  /// Packets the kernel dropped (buffer full).
  public var dropped: UInt64 = 0
  /// Packets the interface dropped.
  public var interfaceDropped: UInt64 = 0
  /// Packets written to the capture files.
  public var written: UInt64 = 0
  /// Bytes of those packets (as captured, up to the snap length).
  public var bytes: UInt64 = 0
  /// Packets written out of time order (see `ReorderWindow`).
  public var outOfOrder: UInt64 = 0
  /// On the SMC dump device when the plan chooses or cuts records: what was kept and left out.
  public var dumpRecords: DumpRecordCounts?

  public init(name: String) { self.name = name }

  /// Dropped by the kernel or the interface.
  public var drops: UInt64 { dropped + interfaceDropped }

  init(_ fields: ReplyFields) throws(AgentProtocolError) {
    name = try fields.string("name")
    received = try Self.count(fields, "received")
    dropped = try Self.count(fields, "dropped")
    interfaceDropped = try Self.count(fields, "if_dropped")
    written = try Self.count(fields, "written")
    bytes = try Self.count(fields, "bytes")
    outOfOrder = try Self.count(fields, "out_of_order")
    if let records = try fields.optionalObject("dump_records") {
      dumpRecords = try DumpRecordCounts(records)
    }
  }

  static func count(_ fields: ReplyFields, _ key: String) throws(AgentProtocolError) -> UInt64 {
    let value = try fields.int(key)
    guard value >= 0 else { throw AgentProtocolError(.badField, "'\(fields.name(key))' is negative") }
    return UInt64(value)
  }

  var json: JSONValue {
    var fields: [(String, JSONValue)] = [
      ("name", .string(name)), ("received", .int(Int64(clamping: received))),
      ("dropped", .int(Int64(clamping: dropped))), ("if_dropped", .int(Int64(clamping: interfaceDropped))),
      ("written", .int(Int64(clamping: written))), ("bytes", .int(Int64(clamping: bytes))),
      ("out_of_order", .int(Int64(clamping: outOfOrder))),
    ]
    if let dumpRecords { fields.append(("dump_records", dumpRecords.json)) }
    return .object(fields)
  }
}

/// What the dump-record selection (`smc_type`, `smc_mode`, `data_snaplen`) did on the SMC
/// dump device: records written by kind, records left out by the setting that left them out.
public struct DumpRecordCounts: Sendable, Equatable {
  /// CDC records written.
  public var cdc: UInt64 = 0
  /// Data records written (whole or cut).
  public var data: UInt64 = 0
  /// Data records written cut to `data_snaplen` (their original length stays in the file).
  public var cut: UInt64 = 0
  /// Dump records written whole because they could not be classified (the header was not
  /// calibrated yet, or a field held a value the calibration does not know): never dropped.
  public var unclassified: UInt64 = 0
  /// Data records left out by `smc_type cdc`.
  public var leftOutData: UInt64 = 0
  /// CDC records left out by `smc_type raw`.
  public var leftOutCDC: UInt64 = 0
  /// Records of the other SMC mode left out by `smc_mode smcr` or `smcd`.
  public var leftOutMode: UInt64 = 0
  /// What the agent measured of the dump header, for people.
  public var calibration = ""

  public init() {}

  /// Records left out, all reasons.
  public var leftOut: UInt64 { leftOutData + leftOutCDC + leftOutMode }

  init(_ fields: ReplyFields) throws(AgentProtocolError) {
    cdc = try InterfaceCounters.count(fields, "cdc")
    data = try InterfaceCounters.count(fields, "data")
    cut = try InterfaceCounters.count(fields, "cut")
    unclassified = try InterfaceCounters.count(fields, "unclassified")
    leftOutData = try InterfaceCounters.count(fields, "left_out_data")
    leftOutCDC = try InterfaceCounters.count(fields, "left_out_cdc")
    leftOutMode = try InterfaceCounters.count(fields, "left_out_mode")
    calibration = try fields.string("calibration")
  }

  var json: JSONValue {
    .object([
      ("cdc", .int(Int64(clamping: cdc))), ("data", .int(Int64(clamping: data))),
      ("cut", .int(Int64(clamping: cut))), ("unclassified", .int(Int64(clamping: unclassified))),
      ("left_out_data", .int(Int64(clamping: leftOutData))),
      ("left_out_cdc", .int(Int64(clamping: leftOutCDC))),
      ("left_out_mode", .int(Int64(clamping: leftOutMode))), ("calibration", .string(calibration)),
    ])
  }
}

/// `status` and `stop` (and the status part of `finalize`, and the session's `state.json`).
public struct StatusReply: AgentReply, Equatable {
  public var session: String
  public var state: CaptureState
  public var packets: Int64
  public var bytes: Int64
  public var files: [String]
  public var interfaces: [InterfaceCounters]
  public var startedNanoseconds: Int64?
  public var stoppedNanoseconds: Int64?
  public var stopReason: StopReason?
  /// What ended the capture with an error (`disk-full`, `capture`, `io`).
  public var captureError: AgentProtocolError?

  public init(
    session: String, state: CaptureState, packets: Int64 = 0, bytes: Int64 = 0, files: [String] = [],
    interfaces: [InterfaceCounters] = [], startedNanoseconds: Int64? = nil, stoppedNanoseconds: Int64? = nil,
    stopReason: StopReason? = nil, captureError: AgentProtocolError? = nil
  ) {
    self.session = session
    self.state = state
    self.packets = packets
    self.bytes = bytes
    self.files = files
    self.interfaces = interfaces
    self.startedNanoseconds = startedNanoseconds
    self.stoppedNanoseconds = stoppedNanoseconds
    self.stopReason = stopReason
    self.captureError = captureError
  }

  /// Packets written out of time order, all interfaces.
  public var outOfOrder: UInt64 { interfaces.reduce(0) { $0 + $1.outOfOrder } }
  /// Packets dropped by the kernel or the interfaces, all interfaces.
  public var drops: UInt64 { interfaces.reduce(0) { $0 + $1.drops } }

  public init(_ json: JSONValue) throws(AgentProtocolError) {
    let fields = try ReplyFields(json)
    session = try fields.string("session")
    state = try fields.value("state", as: CaptureState.self)
    packets = try fields.int("packets")
    bytes = try fields.int("bytes")
    files = try fields.strings("files")
    var interfaces: [InterfaceCounters] = []
    for interface in try fields.objects("interfaces") { interfaces.append(try InterfaceCounters(interface)) }
    self.interfaces = interfaces
    startedNanoseconds = try fields.optionalInt("started_ns")
    stoppedNanoseconds = try fields.optionalInt("stopped_ns")
    if let text = try fields.optionalString("stop_reason") {
      guard let reason = StopReason(text: text) else {
        throw AgentProtocolError(.badField, "'stop_reason' is '\(text)', which no agent writes")
      }
      stopReason = reason
    }
    if let error = try fields.optionalObject("capture_error") {
      captureError = try AgentProtocolError(fields: error)
    }
  }

  public var json: JSONValue { .object(fieldList) }

  /// The fields in the agent's order (`finalize` writes them after its `files`).
  var fieldList: [(String, JSONValue)] {
    var fields: [(String, JSONValue)] = [
      ("session", .string(session)), ("state", .string(state.rawValue)), ("packets", .int(packets)),
      ("bytes", .int(bytes)), ("files", .array(files.map(JSONValue.string))),
      ("interfaces", .array(interfaces.map(\.json))), ("out_of_order", .int(Int64(clamping: outOfOrder))),
    ]
    if let startedNanoseconds { fields.append(("started_ns", .int(startedNanoseconds))) }
    if let stoppedNanoseconds { fields.append(("stopped_ns", .int(stoppedNanoseconds))) }
    if let stopReason { fields.append(("stop_reason", .string(stopReason.description))) }
    if let captureError { fields.append(("capture_error", captureError.json)) }
    return fields
  }
}

/// One finished capture file with its size and SHA-256.
public struct CaptureFileDigest: Sendable, Equatable {
  public var path: String
  public var size: Int64
  public var sha256: String

  public init(path: String, size: Int64, sha256: String) {
    self.path = path
    self.size = size
    self.sha256 = sha256
  }
}

/// `finalize`: the files with their digests, and the final status.
public struct FinalizeReply: AgentReply, Equatable {
  /// `files` here are the digested files; `status.files` the same paths.
  public var files: [CaptureFileDigest]
  public var status: StatusReply

  public init(files: [CaptureFileDigest], status: StatusReply) {
    self.files = files
    self.status = status
  }

  /// `files` (objects) shares its name with the status's `files` (paths): the status is
  /// read from the same object with the digests in place of the paths.
  public init(_ json: JSONValue) throws(AgentProtocolError) {
    let fields = try ReplyFields(json)
    var files: [CaptureFileDigest] = []
    for file in try fields.objects("files") {
      files.append(
        CaptureFileDigest(
          path: try file.string("path"), size: try file.int("size"), sha256: try file.string("sha256")))
    }
    self.files = files
    guard case .object(let all) = json else {
      throw AgentProtocolError(.badField, "a reply must be a JSON object")
    }
    let paths = JSONValue.array(files.map { .string($0.path) })
    status = try StatusReply(.object(all.map { $0.0 == "files" ? ("files", paths) : $0 }))
  }

  public var json: JSONValue {
    let digests = JSONValue.array(
      files.map {
        .object([("path", .string($0.path)), ("size", .int($0.size)), ("sha256", .string($0.sha256))])
      })
    return .object([("files", digests)] + status.fieldList.filter { $0.0 != "files" })
  }
}

/// `clock`: the agent's clocks, for a coarse offset probe.
public struct ClockReply: AgentReply, Equatable {
  public var realtimeNanoseconds: Int64
  public var monotonicNanoseconds: Int64

  public init(realtimeNanoseconds: Int64, monotonicNanoseconds: Int64) {
    self.realtimeNanoseconds = realtimeNanoseconds
    self.monotonicNanoseconds = monotonicNanoseconds
  }

  public init(_ json: JSONValue) throws(AgentProtocolError) {
    let fields = try ReplyFields(json)
    realtimeNanoseconds = try fields.int("realtime_ns")
    monotonicNanoseconds = try fields.int("monotonic_ns")
  }

  public var json: JSONValue {
    .object([("realtime_ns", .int(realtimeNanoseconds)), ("monotonic_ns", .int(monotonicNanoseconds))])
  }
}

/// `cleanup`: the SMC dump devices left by killed agents that were removed.
public struct CleanupReply: AgentReply, Equatable {
  public var removedDevices: [String]

  public init(removedDevices: [String]) { self.removedDevices = removedDevices }

  public init(_ json: JSONValue) throws(AgentProtocolError) {
    removedDevices = try ReplyFields(json).strings("removed_devices")
  }

  public var json: JSONValue { .object([("removed_devices", .array(removedDevices.map(JSONValue.string)))]) }
}

extension AgentProtocolError {
  /// An error object (`{"code": ..., "message": ...}`): a failed reply's `error`, a status's
  /// `capture_error`.
  public init(_ json: JSONValue) throws(AgentProtocolError) {
    try self.init(fields: try ReplyFields(json, path: "error"))
  }

  init(fields: ReplyFields) throws(AgentProtocolError) {
    self.init(Code(rawValue: try fields.string("code")), try fields.string("message"))
  }

  public var json: JSONValue {
    .object([("code", .string(code.rawValue)), ("message", .string(message))])
  }
}
