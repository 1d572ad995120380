import Foundation

/// Two network namespaces joined by a veth pair, created for one test and removed after it.
/// Every name carries the test process id, so parallel runs and leftovers never collide.
public final class NamespacePair: @unchecked Sendable {
  public let client: String
  public let server: String
  public let clientAddress = "10.213.0.1"
  public let serverAddress = "10.213.0.2"
  private var backgroundPIDs: [Int32] = []

  public init(tag: String) throws {
    let id = "\(tag)\(getpid() % 100_000)"
    client = "smcpt-\(id)-c"
    server = "smcpt-\(id)-s"
    let vethC = "spc\(id)"
    let vethS = "sps\(id)"
    try? teardownNamespaces()
    try ip(["netns", "add", client])
    try ip(["netns", "add", server])
    try ip(["link", "add", vethC, "type", "veth", "peer", "name", vethS])
    try ip(["link", "set", vethC, "netns", client])
    try ip(["link", "set", vethS, "netns", server])
    for (ns, veth, address) in [(client, vethC, clientAddress), (server, vethS, serverAddress)] {
      try ip(["-n", ns, "link", "set", veth, "name", "eth0"])
      try exec(ns, ["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"])
      try ip(["-n", ns, "addr", "add", "\(address)/24", "dev", "eth0"])
      try ip(["-n", ns, "link", "set", "eth0", "up"])
      try ip(["-n", ns, "link", "set", "lo", "up"])
    }
  }

  /// Adds a tap device standing in for the SMC dump device in `namespace`.
  public func addTap(_ name: String, in namespace: String) throws {
    try ip(["-n", namespace, "tuntap", "add", "mode", "tap", "name", name])
    try ip(["-n", namespace, "link", "set", name, "up"])
  }

  /// Runs a command inside a namespace and waits for it.
  @discardableResult
  public func exec(_ namespace: String, _ arguments: [String]) throws -> ProcessResult {
    let result = try Tools.run(["ip", "netns", "exec", namespace] + arguments)
    guard result.status == 0 else {
      throw NamespaceError(message: "\(arguments.joined(separator: " ")) in \(namespace): \(result.stderr)")
    }
    return result
  }

  /// Starts a command in a namespace in the background; output goes to files.
  public func start(_ namespace: String, _ arguments: [String], stdout: String, stderr: String) throws
    -> BackgroundProcess
  {
    let process = try BackgroundProcess(
      [try Tools.require("ip"), "netns", "exec", namespace] + arguments, stdout: stdout, stderr: stderr)
    backgroundPIDs.append(process.pid)
    return process
  }

  /// Waits until `path` contains `text` (e.g. tcpdump's "listening on"), at most `seconds`.
  public func waitFor(_ text: String, in path: String, seconds: Double = 10) throws {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
      if let content = try? String(contentsOfFile: path, encoding: .utf8), content.contains(text) { return }
      usleep(20_000)
    }
    let content = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    throw NamespaceError(message: "timed out waiting for '\(text)' in \(path): \(content)")
  }

  private func ip(_ arguments: [String]) throws {
    let result = try Tools.run(["ip"] + arguments)
    guard result.status == 0 else {
      throw NamespaceError(message: "ip \(arguments.joined(separator: " ")): \(result.stderr)")
    }
  }

  private func teardownNamespaces() throws {
    for ns in [client, server] { _ = try? Tools.run(["ip", "netns", "delete", ns]) }
  }

  deinit {
    // Stop only the processes this object started, then remove what it made.
    for pid in backgroundPIDs where kill(pid, 0) == 0 {
      kill(pid, SIGKILL)
      var status: Int32 = 0
      waitpid(pid, &status, 0)
    }
    try? teardownNamespaces()
  }
}

public struct NamespaceError: Error, CustomStringConvertible {
  public var message: String
  public init(message: String) { self.message = message }
  public var description: String { message }
}
