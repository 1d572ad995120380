import Foundation
import SSHTransport
import Testing

@testable import Orchestration

#if canImport(Glibc)
  import Glibc
#endif

/// The tool engines' host scripts, run here with /bin/sh on a folder of our own: the stop
/// signals the recorded process only when its command line names the capture's file (a
/// reused PID is never signalled nor taken for the tool), and a folder that exists already is
/// never reused.
@Suite(.serialized) struct ToolScriptTests {
  func folder() throws -> String {
    let parent = NSTemporaryDirectory() + "smcpair-tool-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
    return parent + "/capture"
  }

  /// Runs `script` with /bin/sh (through `system`, which waits for that shell only) and reads
  /// what it printed from a file: the tool it starts in the background must not hold a pipe
  /// of ours (sshd hands a command only 0, 1 and 2, which the start script redirects).
  func sh(_ script: String, _ arguments: [String]) throws -> ToolReply {
    let output = NSTemporaryDirectory() + "smcpair-tool-out-\(UUID().uuidString)"
    defer { unlink(output) }
    let command = RemoteCommand.join(["/bin/sh", "-c", script, "smcpair-test"] + arguments)
    _ = system(command + " >" + RemoteCommand.quote(output) + " 2>/dev/null </dev/null")
    return ToolReply(try String(contentsOfFile: output, encoding: .utf8))
  }

  func alive(_ pid: Int32) -> Bool { kill(pid, 0) == 0 && !zombie(pid) }
  func zombie(_ pid: Int32) -> Bool {
    ((try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? "").contains(") Z")
  }

  @Test func ourToolIsStartedArmedAndStoppedWithSIGINT() throws {
    let d = try folder()
    defer { try? FileManager.default.removeItem(atPath: (d as NSString).deletingLastPathComponent) }
    // A stand-in tool that says what tcpdump says and names the capture file on its command line.
    let started = try sh(
      HostToolCapture.startScript,
      [
        d, "timeout", "-k", "15", "-s", "INT", "60", "sh", "-c", "echo listening on test >&2; exec sleep 300",
        "tool", "\(d)/capture.pcap",
      ])
    #expect(started["listening"] == "1" && started["alive"] == "yes", "\(started.values) \(started.log)")
    let pid = try #require(started["pid"].flatMap { Int32($0) })
    #expect(
      alive(pid),
      "\((try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? "no process") \((try? String(contentsOfFile: d + "/capture.log", encoding: .utf8)) ?? "")"
    )
    #expect(try sh(HostToolCapture.pollScript, [d])["alive"] == "yes")
    let stopped = try sh(HostToolCapture.stopScript, [d])
    #expect(stopped["signalled"] == "yes")
    #expect(stopped["alive"] == nil, "\(stopped.values)")
    #expect(!alive(pid))
    #expect(try sh(HostToolCapture.pollScript, [d])["alive"] == nil)
    // The same folder again: refused (exit before anything runs), never reused.
    let again = try sh(
      HostToolCapture.startScript, [d, "sh", "-c", "echo listening on test >&2; exec sleep 300"])
    #expect(again["pid"] == nil)
  }

  @Test func aReusedPIDIsNeitherSignalledNorTakenForTheTool() throws {
    let d = try folder()
    defer { try? FileManager.default.removeItem(atPath: (d as NSString).deletingLastPathComponent) }
    try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    // Another process now holds the recorded PID.
    let other = Process()
    other.executableURL = URL(fileURLWithPath: "/bin/sleep")
    other.arguments = ["300"]
    // Not our stdout: a process holding the test runner's pipe keeps it waiting.
    other.standardOutput = FileHandle.nullDevice
    other.standardError = FileHandle.nullDevice
    try other.run()
    defer { kill(other.processIdentifier, SIGKILL) }
    try "\(other.processIdentifier)\n".write(toFile: d + "/pid", atomically: true, encoding: .utf8)
    #expect(try sh(HostToolCapture.pollScript, [d])["alive"] == nil)
    let stopped = try sh(HostToolCapture.stopScript, [d])
    #expect(stopped["signalled"] == nil && stopped["alive"] == nil, "\(stopped.values)")
    #expect(alive(other.processIdentifier))
  }

  @Test func anEmptyDumpFilterKeepsEveryDumpRecordOnAny() {
    #expect(HostToolCapture.combined("tcp port 80", "") == "(tcp port 80) or udp")
    #expect(HostToolCapture.combined("tcp port 80", "udp port 80") == "(tcp port 80) or (udp port 80)")
    #expect(HostToolCapture.combined("", "udp port 80") == "")
    #expect(HostToolCapture.combined("port 80", "port 80") == "port 80")
  }

  @Test func foldersWithCharactersSmcdumpExWouldSplitAreRefused() {
    #expect(HostToolCapture.folderProblem("/var/lib/smcpair/captures/2026-pair1_x.y") == nil)
    #expect(HostToolCapture.folderProblem("/var/lib/my captures/x") != nil)
    #expect(HostToolCapture.folderProblem("/tmp/$(id)/x") != nil)
  }
}
