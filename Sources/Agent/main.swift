// smcpair-agent: the capture agent smcpair runs on each peer. It speaks the agent protocol
// (JSON Lines, docs/agent-protocol.md) on stdin/stdout, and on a Unix socket in the session
// folder so that a capture outlives its control connection and can be re-attached.
// No Foundation: the agent ships as one static binary.
import AgentProtocol
import LiveCapture
import Support

#if canImport(Glibc)
  import Glibc
#endif

nonisolated(unsafe) var signalPipe: [Int32] = [-1, -1]
nonisolated(unsafe) var signalNumber: Int32 = 0

func installSignals() {
  // Start from a clean mask: a parent may have blocked signals, and the agent must see them.
  var empty = sigset_t()
  sigemptyset(&empty)
  sigprocmask(SIG_SETMASK, &empty, nil)
  signal(SIGPIPE, SIG_IGN)
  _ = pipe(&signalPipe)
  for fd in signalPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
  for sig in [SIGINT, SIGTERM, SIGHUP] {
    signal(sig) { number in
      signalNumber = number
      var byte = UInt8(truncatingIfNeeded: number)
      _ = write(signalPipe[1], &byte, 1)
    }
  }
}

/// The protocol loop on stdin/stdout plus the session socket. Returns the exit status.
func serve(root: String) -> Int32 {
  installSignals()
  let service = AgentService(root: root)
  SMCDumpDevice.cleanupLeftovers(root: root)
  var input = LineReader(fd: 0)
  var stdinOpen = true
  var listener: Int32 = -1
  var socketPath = ""
  var clients: [LineReader] = []
  var stateWrittenAfterStop = false
  // A session finalized through `attach` means its owner (stdin) was lost: the agent exits
  // once the attached client leaves, even if the dead owner's channel has not closed yet.
  var finalizedByAttach = false

  func answer(_ line: String?, to fd: Int32) {
    let response =
      line.map { service.respond(to: $0) }
      ?? .failure(id: nil, type: nil, AgentProtocolError(.malformed, "request line longer than 1 MiB"))
    sendLine(response.line, to: fd)
    if fd != 1 && response.ok && response.type == "finalize" { finalizedByAttach = true }
    if listener < 0, let session = service.session {
      socketPath = "\(session.folder)/control.sock"
      listener = listen(at: socketPath)
    }
  }

  while true {
    var fds: [pollfd] = [pollfd(fd: signalPipe[0], events: Int16(POLLIN), revents: 0)]
    if stdinOpen { fds.append(pollfd(fd: 0, events: Int16(POLLIN), revents: 0)) }
    if listener >= 0 { fds.append(pollfd(fd: listener, events: Int16(POLLIN), revents: 0)) }
    for client in clients { fds.append(pollfd(fd: client.fd, events: Int16(POLLIN), revents: 0)) }
    let ready = poll(&fds, nfds_t(fds.count), 200)
    if ready < 0 && errno != EINTR { break }
    if fds[0].revents != 0 {
      let name = signalNumber == SIGINT ? "SIGINT" : (signalNumber == SIGHUP ? "SIGHUP" : "SIGTERM")
      service.shutdown(reason: .signal(name))
      break
    }
    for entry in fds.dropFirst() where entry.revents != 0 {
      if entry.fd == 0 {
        for line in input.read() { answer(line, to: 1) }
        if input.closed { stdinOpen = false }
      } else if entry.fd == listener {
        let client = accept(listener, nil, nil)
        if client >= 0 {
          _ = fcntl(client, F_SETFD, FD_CLOEXEC)
          clients.append(LineReader(fd: client))
        }
      } else if let index = clients.firstIndex(where: { $0.fd == entry.fd }) {
        for line in clients[index].read() { answer(line, to: entry.fd) }
        if clients[index].closed {
          close(entry.fd)
          clients.remove(at: index)
        }
      }
    }
    let state = service.session?.state
    if state == .stopped && !stateWrittenAfterStop {
      service.writeState()
      stateWrittenAfterStop = true
    }
    if finalizedByAttach && clients.isEmpty {
      service.shutdown(reason: .finalizedThroughAttach)
      break
    }
    if !stdinOpen && clients.isEmpty {
      // Nobody is listening: keep capturing until the stop condition, then finalize.
      if state == nil || state == .prepared || state == .stopped || state == .finalized {
        service.shutdown(reason: .controlConnectionClosed)
        break
      }
    }
  }
  for client in clients { close(client.fd) }
  if listener >= 0 {
    close(listener)
    unlink(socketPath)
  }
  return 0
}

/// The folder of session `session` under `root`; nil (said on stderr) for a name that is
/// not a session name.
func sessionFolder(root: String, session: String) -> String? {
  guard CapturePlan.validSession(session) else {
    writeStandardError("smcpair-agent: '\(session)' is not a session name\n")
    return nil
  }
  return "\(root)/sessions/\(session)"
}

/// `attach SESSION`: talk to the agent that owns the session, or answer from its folder.
func attach(root: String, session: String) -> Int32 {
  guard let folder = sessionFolder(root: root, session: session) else { return 64 }
  let fd = connectUnix("\(folder)/control.sock")
  if fd >= 0 {
    signal(SIGPIPE, SIG_IGN)
    var input = LineReader(fd: 0)
    var fromAgent = LineReader(fd: fd)
    var stdinOpen = true
    while true {
      var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0)]
      if stdinOpen { fds.append(pollfd(fd: 0, events: Int16(POLLIN), revents: 0)) }
      guard poll(&fds, nfds_t(fds.count), -1) >= 0 || errno == EINTR else { break }
      if fds.count > 1 && fds[1].revents != 0 {
        for line in input.read() { sendLine(line ?? "", to: fd) }
        if input.closed {
          stdinOpen = false
          shutdown(fd, Int32(SHUT_WR))
        }
      }
      if fds[0].revents != 0 {
        for line in fromAgent.read() { sendLine(line ?? "", to: 1) }
        if fromAgent.closed { break }
      }
    }
    close(fd)
    return 0
  }
  // The owning agent is gone: answer status and finalize from the session folder.
  var input = LineReader(fd: 0)
  let offline = ExitedSession(folder: folder)
  while !input.closed {
    var entry = pollfd(fd: 0, events: Int16(POLLIN), revents: 0)
    _ = poll(&entry, 1, -1)
    for line in input.read() { sendLine(offline.respond(to: line ?? "").line, to: 1) }
  }
  return 0
}

/// `remove SESSION`: deletes a finished session's folder (its capture files, state and
/// socket) after smcpair pulled and verified the files. Refused while an agent still owns
/// the session (its control socket answers). Only the session folder's own entries are
/// removed; nothing it links to.
func removeSession(root: String, session: String) -> Int32 {
  guard let folder = sessionFolder(root: root, session: session) else { return 64 }
  let fd = connectUnix("\(folder)/control.sock")
  if fd >= 0 {
    close(fd)
    writeStandardError("smcpair-agent: session \(session) is still owned by a running agent; stop it first\n")
    return 75
  }
  guard let directory = opendir(folder) else {
    if errno == ENOENT {
      print("nothing to remove: \(folder) does not exist")
      return 0
    }
    writeStandardError("smcpair-agent: cannot open \(folder): \(Errno.current)\n")
    return 74
  }
  var names: [String] = []
  while let entry = readdir(directory) {
    let name = String(cStringField: entry.pointee.d_name)
    if name != "." && name != ".." { names.append(name) }
  }
  closedir(directory)
  var removed = 0
  for name in names {
    // unlink never follows a link; a folder inside (none is made by the agent) stays.
    if unlink("\(folder)/\(name)") == 0 { removed += 1 }
  }
  guard rmdir(folder) == 0 else {
    writeStandardError(
      "smcpair-agent: removed \(removed) files but not \(folder): \(Errno.current)\n")
    return 74
  }
  print("removed \(folder) (\(removed) files)")
  return 0
}

func defaultRoot() -> String {
  if geteuid() == 0 { return "/var/lib/smcpair/agent" }
  let home = getenv("HOME").map { String(cString: $0) } ?? "/tmp"
  return "\(home)/.local/state/smcpair/agent"
}

let usage = """
  USAGE: smcpair-agent [--root DIR] [serve]        speak the agent protocol on stdin/stdout
         smcpair-agent [--root DIR] attach SESSION  reconnect to a session (or read its folder)
         smcpair-agent [--root DIR] cleanup         remove SMC dump devices left by killed agents
         smcpair-agent [--root DIR] remove SESSION  delete a finished session's folder (after a verified pull)
         smcpair-agent --version

  The capture agent smcpair deploys to each host (docs/agent-protocol.md). It captures the
  NIC and the SMC dump device with libpcap into one pcapng per session, under
  DIR/sessions/SESSION/ (default DIR: /var/lib/smcpair/agent as root). Needs root or
  CAP_NET_RAW+CAP_NET_ADMIN.

  """

var arguments = Array(CommandLine.arguments.dropFirst())
var root = defaultRoot()
if let index = arguments.firstIndex(of: "--root") {
  guard index + 1 < arguments.count else {
    writeStandardError("smcpair-agent: --root needs a folder\n")
    exit(64)
  }
  root = arguments[index + 1]
  arguments.removeSubrange(index...(index + 1))
}
switch arguments.first {
case "--version", "-V":
  print(
    "smcpair-agent \(AgentInfo.version) protocol \(AgentProtocolVersion.current) build \(AgentInfo.buildID) (\(FilterCheck.libraryVersion))"
  )
  exit(0)
case "--help", "-h":
  print(usage, terminator: "")
  exit(0)
case nil, "serve":
  exit(serve(root: root))
case "attach":
  guard arguments.count == 2 else {
    writeStandardError("smcpair-agent: attach needs a session name\n" + usage)
    exit(64)
  }
  exit(attach(root: root, session: arguments[1]))
case "remove":
  guard arguments.count == 2 else {
    writeStandardError("smcpair-agent: remove needs a session name\n" + usage)
    exit(64)
  }
  exit(removeSession(root: root, session: arguments[1]))
case "cleanup":
  let removed = SMCDumpDevice.cleanupLeftovers(root: root)
  print(removed.isEmpty ? "nothing to clean up" : "removed \(removed.joined(separator: ", "))")
  exit(0)
default:
  writeStandardError("smcpair-agent: unknown argument '\(arguments[0])'; try --help\n")
  exit(64)
}
