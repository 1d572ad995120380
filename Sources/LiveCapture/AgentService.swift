import AgentProtocol

#if canImport(Glibc)
  import Glibc
#endif

/// Answers agent protocol requests for one capture session at a time. The I/O loop (stdin,
/// the session socket, signals) lives in the agent executable; this type holds the logic.
public final class AgentService: @unchecked Sendable {
  public let root: String
  public private(set) var session: CaptureSession?

  public init(root: String) {
    self.root = root
  }

  /// The one response to a request line. Never throws: bad input becomes an error reply.
  public func respond(to line: String) -> AgentResponse {
    let request: AgentRequest
    do {
      request = try AgentRequest.parse(line)
    } catch {
      return .failure(id: error.id, type: nil, error.error)
    }
    do {
      return .success(request, try handle(request))
    } catch {
      return .failure(id: request.id, type: request.type.rawValue, error)
    }
  }

  func handle(_ request: AgentRequest) throws(AgentProtocolError) -> [(String, JSONValue)] {
    switch request.type {
    case .hello: return hello()
    case .clock:
      return [
        ("realtime_ns", .int(Clock.realtimeNanoseconds())),
        ("monotonic_ns", .int(Clock.monotonicNanoseconds())),
      ]
    case .prepare:
      if let session, session.state == .prepared || session.state == .capturing {
        throw AgentProtocolError(
          .outOfOrder,
          "session '\(session.plan.session)' is \(session.state.rawValue); stop and finalize it first")
      }
      let plan = try CapturePlan(request.body)
      try Privileges.require()
      let created = try CaptureSession(plan: plan, root: root)
      session = created
      writeState()
      return [
        ("session", .string(plan.session)), ("folder", .string(created.folder)),
        ("interfaces", .array(created.interfaceNames.map(JSONValue.string))),
        ("smc_dump", .string(created.smcDumpDetail)),
      ]
    case .start:
      let session = try current("start")
      let started = try session.start()
      writeState()
      return [
        ("started_ns", .int(started)), ("files", .array(session.snapshot().files.map(JSONValue.string))),
      ]
    case .status:
      let session = try current("status")
      return status(session)
    case .stop:
      let session = try current("stop")
      guard session.state == .capturing || session.state == .stopped else {
        throw AgentProtocolError(
          .outOfOrder, "stop needs a started session (this one is \(session.state.rawValue))")
      }
      session.stop()
      writeState()
      return status(session)
    case .finalize:
      let session = try current("finalize")
      let files = try session.finalize()
      writeState()
      return [
        (
          "files",
          .array(
            files.map {
              .object([("path", .string($0.path)), ("size", .int($0.size)), ("sha256", .string($0.sha256))])
            })
        )
      ] + status(session)
    case .cleanup:
      if let session, session.state == .capturing {
        throw AgentProtocolError(.outOfOrder, "a capture is running; stop it before cleanup")
      }
      let removed = SMCDumpDevice.cleanupLeftovers(root: root)
      return [("removed_devices", .array(removed.map(JSONValue.string)))]
    }
  }

  func current(_ what: String) throws(AgentProtocolError) -> CaptureSession {
    guard let session else {
      throw AgentProtocolError(.outOfOrder, "\(what) needs a prepared session; send prepare first")
    }
    return session
  }

  func hello() -> [(String, JSONValue)] {
    let probe = SMCDumpProbe.probe()
    let privileges = Privileges.current()
    return [
      ("agent_version", .string(AgentInfo.version)), ("protocol", .int(AgentProtocolVersion.current)),
      ("build", .string(AgentInfo.buildID)), ("kernel", .string(AgentInfo.kernel)),
      ("hostname", .string(AgentInfo.hostname)), ("libpcap", .string(FilterCheck.libraryVersion)),
      (
        "privileges",
        .object([
          ("root", .bool(privileges.root)), ("cap_net_raw", .bool(privileges.netRaw)),
          ("cap_net_admin", .bool(privileges.netAdmin)), ("sufficient", .bool(privileges.sufficient)),
        ])
      ),
      ("interfaces", .array(Privileges.interfaces().map(JSONValue.string))),
      ("smc_dump", .object([("supported", .bool(probe.supported)), ("detail", .string(probe.detail))])),
      ("root", .string(root)),
    ]
  }

  public func status(_ session: CaptureSession) -> [(String, JSONValue)] {
    let c = session.snapshot()
    var fields: [(String, JSONValue)] = [
      ("session", .string(session.plan.session)), ("state", .string(session.state.rawValue)),
      ("packets", .int(c.packets)), ("bytes", .int(c.bytes)),
      ("files", .array(c.files.map(JSONValue.string))),
      (
        "interfaces",
        .array(
          c.interfaces.map {
            .object([
              ("name", .string($0.name)), ("received", .int(Int64($0.received))),
              ("dropped", .int(Int64($0.dropped))),
              ("if_dropped", .int(Int64($0.interfaceDropped))), ("written", .int(Int64($0.written))),
              ("out_of_order", .int(Int64($0.outOfOrder))),
            ])
          })
      ),
      ("out_of_order", .int(Int64(c.interfaces.reduce(0) { $0 + $1.outOfOrder }))),
    ]
    if let started = c.startedNanoseconds { fields.append(("started_ns", .int(started))) }
    if let stopped = c.stoppedNanoseconds { fields.append(("stopped_ns", .int(stopped))) }
    if let reason = c.stopReason { fields.append(("stop_reason", .string(reason))) }
    if let error = c.error {
      fields.append(
        (
          "capture_error",
          .object([("code", .string(error.code.rawValue)), ("message", .string(error.message))])
        ))
    }
    return fields
  }

  /// Writes `state.json` in the session folder (what a later `attach` reads when this agent
  /// is gone).
  public func writeState() {
    guard let session else { return }
    let text = JSONValue.object(status(session)).description + "\n"
    let path = "\(session.folder)/state.json"
    let temporary = path + ".tmp"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else { return }
    _ = text.utf8CString.withUnsafeBufferPointer { write(fd, $0.baseAddress, $0.count - 1) }
    close(fd)
    rename(temporary, path)
  }

  /// Stops a running capture (signals, lost control) and finalizes it.
  public func shutdown(reason: String) {
    guard let session else { return }
    if session.state == .capturing { session.stop(reason: reason) }
    if session.state == .stopped { _ = try? session.finalize() }
    writeState()
  }
}

/// Root or the two capabilities capture needs.
public enum Privileges {
  public struct Current: Sendable {
    public var root: Bool
    public var netRaw: Bool
    public var netAdmin: Bool
    public var sufficient: Bool { root || (netRaw && netAdmin) }
  }

  public static func current() -> Current {
    var effective: UInt64 = 0
    if let status = FileText.read("/proc/self/status") {
      for line in status.split(separator: "\n") where line.hasPrefix("CapEff:") {
        effective = UInt64(line.dropFirst(7).filter { !$0.isWhitespace }, radix: 16) ?? 0
      }
    }
    // CAP_NET_ADMIN = 12, CAP_NET_RAW = 13.
    return Current(
      root: geteuid() == 0, netRaw: effective & (1 << 13) != 0, netAdmin: effective & (1 << 12) != 0)
  }

  public static func require() throws(AgentProtocolError) {
    guard current().sufficient else {
      throw AgentProtocolError(
        .privileges,
        "capturing needs root or CAP_NET_RAW and CAP_NET_ADMIN; run the agent with 'become: sudo' (sudo -n) or grant the capabilities (setcap cap_net_raw,cap_net_admin+ep smcpair-agent)"
      )
    }
  }

  public static func interfaces() -> [String] {
    guard let directory = opendir("/sys/class/net") else { return [] }
    defer { closedir(directory) }
    var names: [String] = []
    while let entry = readdir(directory) {
      let name = withUnsafeBytes(of: entry.pointee.d_name) {
        String(cString: $0.bindMemory(to: CChar.self).baseAddress!)
      }
      if !name.hasPrefix(".") { names.append(name) }
    }
    return names.sorted()
  }
}

/// Small files read whole, without Foundation (the agent ships without it).
public enum FileText {
  /// A whole (small) file as text; nil when it cannot be opened.
  public static func read(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
      let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
      if n <= 0 { break }
      out += buffer[0..<n]
    }
    return String(decoding: out, as: UTF8.self)
  }
}
