import AgentProtocol
import Checksum
import Support

#if canImport(Glibc)
  import Glibc
#endif

/// Something that answers agent requests: the live `AgentService`, or `ExitedSession` (a
/// session whose agent is gone). Parsing, the envelope and error replies are here, once.
public protocol AgentRequestHandler {
  /// The reply to one parsed request.
  func reply(to request: AgentRequest) throws(AgentProtocolError) -> any AgentReply
}

extension AgentRequestHandler {
  /// The one response to a request line. Never throws: bad input becomes an error reply.
  public func respond(to line: String) -> AgentResponse {
    let request: AgentRequest
    do {
      request = try AgentRequest.parse(line)
    } catch {
      return .failure(id: error.id, type: nil, error.error)
    }
    do {
      return .success(request, try reply(to: request))
    } catch {
      return .failure(id: request.id, type: request.type.rawValue, error)
    }
  }
}

/// Answers agent protocol requests for one capture session at a time. The I/O loop (stdin,
/// the session socket, signals) lives in the agent executable; this type holds the logic.
public final class AgentService: AgentRequestHandler, @unchecked Sendable {
  public let root: String
  public private(set) var session: CaptureSession?

  public init(root: String) {
    self.root = root
  }

  public func reply(to request: AgentRequest) throws(AgentProtocolError) -> any AgentReply {
    switch request.type {
    case .hello: return hello()
    case .clock:
      return ClockReply(
        realtimeNanoseconds: SystemClock.realtimeNanoseconds(),
        monotonicNanoseconds: SystemClock.monotonicNanoseconds())
    case .prepare: return try prepare(try CapturePlan(request.body))
    case .start:
      let session = try current("start")
      let started = try session.start()
      writeState()
      return StartReply(startedNanoseconds: started, files: session.snapshot().files)
    case .status:
      return try current("status").status
    case .stop:
      let session = try current("stop")
      guard session.state == .capturing || session.state == .stopped else {
        throw AgentProtocolError(
          .outOfOrder, "stop needs a started session (this one is \(session.state.rawValue))")
      }
      session.stop()
      writeState()
      return session.status
    case .finalize:
      let session = try current("finalize")
      let files = try session.finalize()
      writeState()
      return FinalizeReply(files: files, status: session.status)
    case .cleanup:
      if let session, session.state == .capturing {
        throw AgentProtocolError(.outOfOrder, "a capture is running; stop it before cleanup")
      }
      return CleanupReply(removedDevices: SMCDumpDevice.cleanupLeftovers(root: root))
    }
  }

  func prepare(_ plan: CapturePlan) throws(AgentProtocolError) -> PrepareReply {
    if let session, session.state == .prepared || session.state == .capturing {
      throw AgentProtocolError(
        .outOfOrder,
        "session '\(session.plan.session)' is \(session.state.rawValue); stop and finalize it first")
    }
    try Privileges.require()
    let created = try CaptureSession(plan: plan, root: root)
    session = created
    writeState()
    return PrepareReply(
      session: plan.session, folder: created.folder, interfaces: created.interfaceNames,
      smcDump: created.smcDumpDetail)
  }

  func current(_ what: String) throws(AgentProtocolError) -> CaptureSession {
    guard let session else {
      throw AgentProtocolError(.outOfOrder, "\(what) needs a prepared session; send prepare first")
    }
    return session
  }

  func hello() -> HelloReply {
    let probe = SMCDumpProbe.probe()
    return HelloReply(
      agentVersion: AgentInfo.version, build: AgentInfo.buildID, kernel: AgentInfo.kernel,
      hostname: AgentInfo.hostname, libpcap: FilterCheck.libraryVersion, privileges: Privileges.current(),
      interfaces: Privileges.interfaces(),
      smcDump: HelloReply.SMCDumpSupport(supported: probe.supported, detail: probe.detail), root: root)
  }

  /// Writes `state.json` in the session folder (what a later `attach` reads when this agent
  /// is gone).
  public func writeState() {
    guard let session else { return }
    let text = session.status.json.description + "\n"
    let path = "\(session.folder)/state.json"
    let temporary = path + ".tmp"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else { return }
    _ = text.utf8CString.withUnsafeBufferPointer { write(fd, $0.baseAddress, $0.count - 1) }
    close(fd)
    rename(temporary, path)
  }

  /// Stops a running capture (signals, lost control) and finalizes it.
  public func shutdown(reason: StopReason) {
    guard let session else { return }
    if session.state == .capturing { session.stop(reason: reason) }
    if session.state == .stopped { _ = try? session.finalize() }
    writeState()
  }
}

extension CaptureSession {
  /// The `status` reply: the plan's session, the state and the capture thread's counters.
  public var status: StatusReply {
    let c = snapshot()
    return StatusReply(
      session: plan.session, state: state, packets: c.packets, bytes: c.bytes, files: c.files,
      interfaces: c.interfaces, startedNanoseconds: c.startedNanoseconds,
      stoppedNanoseconds: c.stoppedNanoseconds,
      stopReason: c.stopReason, captureError: c.error)
  }
}

/// A session whose agent has exited (`attach` found no one on its socket): its state.json
/// and files are all there is, so `status`, `stop` and `finalize` are answered from them.
public struct ExitedSession: AgentRequestHandler {
  public let folder: String

  public init(folder: String) { self.folder = folder }

  public func reply(to request: AgentRequest) throws(AgentProtocolError) -> any AgentReply {
    let status = try savedStatus()
    switch request.type {
    case .status, .stop:
      return status
    case .finalize:
      var files: [CaptureFileDigest] = []
      for path in status.files { files.append(try CaptureFileDigest.of(path)) }
      return FinalizeReply(files: files, status: status)
    default:
      throw AgentProtocolError(
        .outOfOrder, "the agent of this session has exited; only status, stop and finalize work")
    }
  }

  func savedStatus() throws(AgentProtocolError) -> StatusReply {
    guard let text = FileText.read("\(folder)/state.json"), let saved = try? JSONValue.parse(text) else {
      throw AgentProtocolError(.outOfOrder, "no session in \(folder) (no running agent and no state.json)")
    }
    do {
      return try StatusReply(saved)
    } catch {
      throw AgentProtocolError(.io, "\(folder)/state.json does not hold a session's status: \(error.message)")
    }
  }
}

extension CaptureFileDigest {
  /// The size and SHA-256 of a finished capture file.
  static func of(_ path: String) throws(AgentProtocolError) -> CaptureFileDigest {
    var info = stat()
    guard stat(path, &info) == 0, let digest = SHA256.file(path) else {
      throw AgentProtocolError(.io, "cannot read \(path): \(Errno.current)")
    }
    return CaptureFileDigest(path: path, size: Int64(info.st_size), sha256: digest)
  }
}
