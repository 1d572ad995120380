import AgentProtocol
import CaptureFiles
import Foundation
import SSHTransport

/// The steps of a side whose engine is the host's own tool (tcpdump, smcdump-ex): the same
/// arm, watch, stop, pull and removal as the agent's, through `HostToolCapture`'s scripts.
extension CaptureSide {
  /// The pulled copy's extension: tcpdump and smcdump-ex write pcap, the agent pcapng.
  static func localExtension(_ remotePath: String) -> String {
    remotePath.hasSuffix(".pcap") ? ".pcap" : ".pcapng"
  }

  /// The host's clock in nanoseconds: the agent's `clock`, or `date +%s%N` for a tool engine.
  func remoteClock() -> Int64? {
    guard tool != nil else { return (try? agent?.call(.clock, timeout: 5))?.realtimeNanoseconds }
    guard let output = try? run("date +%s%N", step: "reading the host's clock"), output.exitStatus == 0 else {
      return nil
    }
    return Int64(output.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines))
  }

  /// Runs one of the tool scripts; its reply, or a failure naming `step`.
  func toolScript(_ tool: HostToolCapture, _ script: String, _ arguments: [String] = [], step: String)
    throws(CaptureFailure) -> (status: Int32?, reply: ToolReply)
  {
    let output = try run(tool.command(script, arguments, access: access), step: step)
    return (output.exitStatus, ToolReply(output.stdoutText))
  }

  /// Starts the tool and arms the side once the tool says it is listening.
  func startTool(_ tool: HostToolCapture, _ plan: CapturePlan) throws(CaptureFailure) {
    let step = "starting \(tool.engine.rawValue)"
    let (status, reply) = try toolScript(tool, HostToolCapture.startScript, tool.argv(plan), step: step)
    guard status == 0, let pid = reply["pid"] else {
      throw CaptureFailure(
        host: name, step: step,
        "could not create \(tool.folder) or start the tool (exit \(status.map(String.init) ?? "?")): \(reply.logTail)"
      )
    }
    note("\(tool.engine.rawValue) started, pid \(pid), in \(tool.folder)")
    guard reply["alive"] == "yes", Int(reply["listening"] ?? "") ?? 0 >= 1 else {
      let what = reply["alive"] == "yes" ? "did not say it is listening within 10 s" : "ended at once"
      throw CaptureFailure(
        host: name, step: step,
        "\(tool.engine.rawValue) \(what): \(reply.logTail)\(abandonTool(tool, step: step))")
    }
    startedNanoseconds = reply["started_ns"].flatMap { Int64($0) }
    progress.state = .capturing
    note(
      "capturing: \(reply.log.split(separator: "\n").filter { $0.contains("listening on") }.joined(separator: "; "))"
    )
  }

  /// After a failed start: stops the tool if it still runs (by its PID, when ours), reports a
  /// device it left, and removes its folder; returns what is left on the host, as a sentence
  /// to add to the failure ("" when nothing is).
  func abandonTool(_ tool: HostToolCapture, step: String) -> String {
    var left: [String] = []
    if let (_, stopped) = try? toolScript(tool, HostToolCapture.stopScript, step: step) {
      if stopped["alive"] == "yes" { left.append("the tool still runs (pid in \(tool.folder)/pid)") }
      leftDevices = stopped.leftDevices
      if !leftDevices.isEmpty { left.append("device(s) \(leftDevices.joined(separator: ", "))") }
    }
    if left.isEmpty, let (status, _) = try? toolScript(tool, HostToolCapture.removeScript, step: step),
      status == 0
    {
      note("removed \(tool.folder) after the failed start")
      return ""
    }
    left.append("its folder \(tool.folder)")
    return "; left on the host: " + left.joined(separator: ", ")
  }

  /// Refreshes `progress` about once a second (each poll is an exec on the host): the file's
  /// size, and whether the tool still runs. A tool that ended by itself stopped the side.
  func pollTool() {
    guard endedEarly == nil, failure == nil, progress.state == .capturing, let tool,
      Date().timeIntervalSince(lastToolPoll) >= 1
    else { return }
    lastToolPoll = Date()
    do {
      let (_, reply) = try toolScript(
        tool, HostToolCapture.pollScript, step: "watching \(tool.engine.rawValue)")
      progress.bytes = reply["size"].flatMap { Int64($0) } ?? progress.bytes
      if reply["alive"] != "yes" {
        progress.state = .stopped
        progress.stopReason = stopReason(reply)
        note("\(tool.engine.rawValue) ended by itself: \(reply.logTail)")
      }
    } catch {
      endedEarly = error.message
      progress.state = .lost
      note("lost while capturing: \(error.message)")
      dropConnection()
    }
  }

  /// Why a tool ended: its closing statistics say it ended cleanly (the duration's `timeout`
  /// or `-c`), their absence that it failed.
  func stopReason(_ reply: ToolReply) -> StopReason {
    guard let statistics = reply.statistics else { return .error }
    if let packets = toolPlan?.stop.packets, statistics.captured >= packets { return .packetCountReached }
    return .durationReached
  }

  /// SIGINT by the recorded PID, then the file's size and digest; the side is finalized.
  func stopTool(_ tool: HostToolCapture) throws(CaptureFailure) {
    let step = "stopping \(tool.engine.rawValue)"
    let (_, reply) = try toolScript(tool, HostToolCapture.stopScript, step: step)
    if reply["signalled"] == "yes", progress.stopReason == nil { progress.stopReason = .requested }
    if progress.stopReason == nil { progress.stopReason = stopReason(reply) }
    stoppedNanoseconds = reply["stopped_ns"].flatMap { Int64($0) }
    if let statistics = reply.statistics {
      progress.packets = statistics.captured
      progress.drops = statistics.dropped
      note(
        "\(tool.engine.rawValue): \(statistics.captured) packets captured, \(statistics.received) received by filter, \(statistics.dropped) dropped by kernel"
      )
    }
    leftDevices = reply.leftDevices
    if !leftDevices.isEmpty {
      note(
        "WARNING: \(tool.engine.rawValue) left SMC dump device(s) \(leftDevices.joined(separator: ", ")) on the host"
      )
    }
    guard reply["alive"] != "yes" else {
      throw CaptureFailure(
        host: name, step: step,
        "\(tool.engine.rawValue) (pid in \(tool.folder)/pid) did not exit within 15 s of SIGINT; it is still running: \(reply.logTail)"
      )
    }
    guard let sizeText = reply["size"], let size = Int64(sizeText) else {
      throw CaptureFailure(host: name, step: step, "\(tool.file) is missing: \(reply.logTail)")
    }
    var digest = ""
    if reply["sha256sum"] == "yes" {
      // Its own exec without an overall deadline: hashing gigabytes may take minutes.
      let ssh = try session(step)
      let hashed: CommandOutput
      do throws(SSHError) {
        hashed = try ssh.run(
          tool.command(HostToolCapture.hashScript, [], access: access), purpose: "sha256sum of \(tool.file)",
          limits: CommandLimits(stdout: 4096, stderr: 64 << 10, seconds: nil))
      } catch {
        throw CaptureFailure(host: name, step: step, error.message)
      }
      digest = ToolReply(hashed.stdoutText)["sha256"] ?? ""
      guard digest.count == 64,
        digest.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) })
      else {
        throw CaptureFailure(
          host: name, step: step, "sha256sum of \(tool.file) failed; cannot verify the pull")
      }
    }
    if digest.isEmpty {
      note(
        "no sha256sum on the host: the pull is checked by the file's size and a full read of its structure")
    }
    progress.bytes = size
    remoteFiles = [(tool.file, size, digest)]
    progress.state = .finalized
    note("finalized: \(tool.file) (\(size) bytes)")
  }

  /// A resumed session's side that `engine` captured: its folder is found from the session
  /// name (stop, hash, pull and removal need nothing else).
  func resumeTool(_ engine: CaptureEngine) {
    self.engine = engine
    tool = HostToolCapture(engine: engine, facts: HostFacts(), access: access, session: remoteSession)
  }

  /// The check of a pulled copy that has no digest from its host: the size the host reported,
  /// and every block readable as pcap or pcapng. A copy that fails is removed.
  func verifyStructure(_ local: String, size: Int64, remote: String) throws(SSHError) {
    var info = stat()
    let actual = stat(local, &info) == 0 ? Int64(info.st_size) : -1
    func reject(_ why: String) -> SSHError {
      unlink(local)
      return SSHError(.checksum, host: name, "\(remote): \(why); the copy was removed, pull again")
    }
    guard actual == size else { throw reject("the copy has \(actual) bytes, the host reported \(size)") }
    do {
      let reader = try CaptureFileReader(path: local)
      while try reader.next() != nil {}
    } catch {
      throw reject("the copy does not read as a capture file: \(error)")
    }
  }

  /// Deletes the tool's folder on the host, after the verified pull.
  func removeToolFolder(_ tool: HostToolCapture) {
    do {
      let (status, _) = try toolScript(tool, HostToolCapture.removeScript, step: "removing the host's copy")
      remoteRetention = status == 0 ? "removed" : "left: could not remove \(tool.folder)"
      note(status == 0 ? "removed \(tool.folder)" : "could not remove \(tool.folder)")
    } catch {
      remoteRetention = "left: \(error.message)"
      note("could not remove the host's copy: \(error.message)")
    }
  }
}
