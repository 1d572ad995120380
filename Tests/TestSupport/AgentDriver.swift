import AgentProtocol
import ChildProcess
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Runs `smcpair-agent` (optionally inside a namespace) with pipes, sends requests and reads
/// responses with a timeout.
public final class AgentDriver: @unchecked Sendable {
  public let pid: pid_t
  /// Kept so the child is owned here; waiting uses the raw status (tests look at it).
  let process: RunningProcess
  let input: Int32
  let output: Int32
  var pending: [UInt8] = []
  var nextID: Int64 = 1
  public private(set) var exitStatus: Int32?

  public init(_ arguments: [String]) throws {
    let started: (process: RunningProcess, input: Int32, output: Int32)
    do {
      started = try ChildProcess.startWithPipes(arguments)
    } catch {
      throw NamespaceError(message: "cannot start \(arguments[0]): \(error.message)")
    }
    process = started.process
    pid = started.process.pid
    input = started.input
    output = started.output
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
