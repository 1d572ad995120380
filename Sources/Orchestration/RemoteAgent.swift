import AgentProtocol
import Foundation
import SSHTransport

/// One conversation with `smcpair-agent` over an SSH exec channel (JSON Lines, one request
/// and one response at a time; docs/agent-protocol.md).
public final class RemoteAgent: @unchecked Sendable {
  let stream: CommandStream
  let host: String
  private var nextID: Int64 = 1

  /// Starts `command` (from `HostAccess.agentCommand`) on `session`.
  public init(session: SSHSession, command: String, host: String) throws(CaptureFailure) {
    do {
      stream = try session.stream(command)
    } catch {
      throw CaptureFailure(host: host, step: "starting the agent", error.message)
    }
    self.host = host
  }

  /// Talks to an agent already started on `stream` (see `CaptureSide.prepareHost`).
  init(stream: CommandStream, host: String) {
    self.stream = stream
    self.host = host
  }

  /// Sends one request and waits up to `timeout` seconds for its reply, read as the
  /// request's reply type. An error response becomes a `CaptureFailure` naming the agent's
  /// error code and message; a reply that does not fit the protocol, one naming the field.
  @discardableResult
  public func call<Reply>(_ call: AgentCall<Reply>, timeout: Double = 30) throws(CaptureFailure) -> Reply {
    let step = "agent '\(call.type.rawValue)'"
    let response = try exchange(call.type, call.fields, step: step, timeout: timeout)
    do {
      return try response.reply(Reply.self)
    } catch  where error.code == .unsupportedVersion {
      throw CaptureFailure(host: host, step: step, error.message)
    } catch {
      throw CaptureFailure(
        host: host, step: step,
        "the agent's reply does not fit protocol \(AgentProtocolVersion.current): \(error.message)")
    }
  }

  /// One request line out, its response line back (lines for other ids skipped).
  func exchange(_ type: RequestType, _ fields: [(String, JSONValue)], step: String, timeout: Double)
    throws(CaptureFailure) -> AgentResponse
  {
    let id = nextID
    nextID += 1
    let request = AgentRequest(id: id, type: type, fields: fields)
    do {
      try stream.send(line: request.line)
    } catch {
      throw CaptureFailure(
        host: host, step: step, "the agent is not listening (\(error.message))\(stderrNote)",
        connectionLost: error.code == .timeout || error.code == .disconnected)
    }
    let deadline = Date().addingTimeInterval(timeout)
    while true {
      let remaining = deadline.timeIntervalSinceNow
      let line: String?
      do {
        line = try stream.readLine(timeout: max(remaining, 0.01))
      } catch {
        throw CaptureFailure(
          host: host, step: step, "the connection broke: \(error.message)\(stderrNote)", connectionLost: true)
      }
      guard let line else {
        if deadline.timeIntervalSinceNow <= 0 {
          throw CaptureFailure(
            host: host, step: step, "no answer within \(Int(timeout)) s", connectionLost: true)
        }
        throw CaptureFailure(host: host, step: step, "the agent ended\(stderrNote)")
      }
      let response: AgentResponse
      do {
        response = try AgentResponse.parse(line)
      } catch {
        throw CaptureFailure(
          host: host, step: step, "the agent sent something that is not a protocol line: \(error.message)")
      }
      guard response.id == id || response.id == nil else {
        // Lines for other requests do not extend the wait (a peer that floods them would
        // otherwise keep this call going for ever).
        if deadline.timeIntervalSinceNow <= 0 {
          throw CaptureFailure(
            host: host, step: step, "no answer within \(Int(timeout)) s", connectionLost: true)
        }
        continue
      }
      if let error = response.error, !response.ok {
        throw CaptureFailure(host: host, step: step, "\(error.code.rawValue): \(error.message)")
      }
      return response
    }
  }

  /// What the agent last wrote on stderr, for error messages.
  var stderrNote: String {
    let text = String(decoding: stream.stderrTail.suffix(600), as: UTF8.self)
      .trimmingCharacters(in: .whitespacesAndNewlines)
    return text.isEmpty ? "" : "; it said: \(text)"
  }

  /// Closes the agent's stdin (a capturing agent goes on until its stop condition).
  public func close() { _ = try? stream.close() }
}
