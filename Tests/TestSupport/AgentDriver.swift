import AgentProtocol
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Runs `smcpair-agent` (optionally inside a namespace) with pipes, sends requests and reads
/// responses with a timeout.
public final class AgentDriver: @unchecked Sendable {
  public let pid: pid_t
  let input: Int32
  let output: Int32
  var pending: [UInt8] = []
  var nextID: Int64 = 1
  public private(set) var exitStatus: Int32?

  public init(_ arguments: [String]) throws {
    var toChild: [Int32] = [-1, -1]
    var fromChild: [Int32] = [-1, -1]
    guard pipe(&toChild) == 0, pipe(&fromChild) == 0 else { throw NamespaceError(message: "pipe failed") }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
    posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
    for fd in toChild + fromChild { posix_spawn_file_actions_addclose(&actions, fd) }
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var empty = sigset_t()
    sigemptyset(&empty)
    posix_spawnattr_setsigmask(&attributes, &empty)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
    var cArguments = arguments.map { strdup($0) } + [nil]
    defer { for pointer in cArguments { free(pointer) } }
    var child: pid_t = 0
    let result = posix_spawn(&child, arguments[0], &actions, &attributes, &cArguments, environ)
    close(toChild[0])
    close(fromChild[1])
    guard result == 0 else {
      close(toChild[1])
      close(fromChild[0])
      throw NamespaceError(message: "cannot start \(arguments[0]): \(String(cString: strerror(result)))")
    }
    pid = child
    input = toChild[1]
    output = fromChild[0]
    _ = Glibc.signal(SIGPIPE, SIG_IGN)
  }

  deinit {
    close(input)
    close(output)
    if exitStatus == nil {
      kill(pid, SIGKILL)
      var status: Int32 = 0
      waitpid(pid, &status, 0)
    }
  }

  /// Sends a raw line (for malformed-input tests).
  public func sendRaw(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(input, $0.baseAddress, $0.count) }
  }

  /// The next response line, or nil after `timeout` seconds or at end of output.
  public func readResponse(timeout: Double = 20) -> AgentResponse? {
    let deadline = Date().addingTimeInterval(timeout)
    while true {
      if let newline = pending.firstIndex(of: 0x0A) {
        let line = String(decoding: pending[..<newline], as: UTF8.self)
        pending.removeFirst(newline + 1)
        return try? AgentResponse.parse(line)
      }
      let left = deadline.timeIntervalSinceNow
      guard left > 0 else { return nil }
      var entry = pollfd(fd: output, events: Int16(POLLIN), revents: 0)
      guard poll(&entry, 1, Int32(left * 1000) + 1) > 0 else { return nil }
      var buffer = [UInt8](repeating: 0, count: 65536)
      let n = buffer.withUnsafeMutableBytes { read(output, $0.baseAddress, $0.count) }
      if n <= 0 { return nil }
      pending += buffer[0..<n]
    }
  }

  /// Sends a request and returns its response.
  public func request(_ type: RequestType, _ fields: [(String, JSONValue)] = [], timeout: Double = 20)
    -> AgentResponse?
  {
    let id = nextID
    nextID += 1
    sendRaw(AgentRequest(id: id, type: type, fields: fields).line)
    return readResponse(timeout: timeout)
  }

  /// Closes the agent's stdin (the control connection going away).
  public func closeInput() { close(input) }

  public func send(signal number: Int32) { kill(pid, number) }

  /// Waits for exit; the raw wait status, or nil on timeout.
  @discardableResult
  public func wait(seconds: Double) -> Int32? {
    if let exitStatus { return exitStatus }
    let deadline = Date().addingTimeInterval(seconds)
    repeat {
      var status: Int32 = 0
      if waitpid(pid, &status, WNOHANG) == pid {
        exitStatus = status
        return status
      }
      usleep(10_000)
    } while Date() < deadline
    return nil
  }
}
