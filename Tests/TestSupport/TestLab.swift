import Foundation

/// A lab brought up with the built `smcpair` for one test, under a temporary state folder,
/// and taken down when released.
public final class TestLab: @unchecked Sendable {
  public struct Host: Decodable, Sendable {
    public var name: String
    public var namespace: String
    /// The SSH (management) address, on eth0.
    public var address: String
    /// The data0 address workloads use; nil in a single-network lab.
    public var data_address: String?
    public var port: Int
    public var dump_device: String
    public var healthy: Bool

    /// Where workloads reach the host: the data address, else the SSH address.
    public var trafficAddress: String { data_address ?? address }
    /// The interface that carries the workloads' traffic.
    public var trafficInterface: String { data_address == nil ? "eth0" : "data0" }
  }

  public struct Status: Decodable, Sendable {
    public var name: String
    public var layout: String
    public var inventory: String
    public var identity: String
    public var known_hosts: String
    public var up: Bool
    public var hosts: [Host]
  }

  public let name: String
  public let stateRoot: TemporaryDirectory
  public let smcpair: String
  public private(set) var status: Status
  public private(set) var upSeconds: Double = 0

  /// `singleNetwork`: eth0 only (`lab up --single-network`); otherwise every host has
  /// eth0 for SSH and data0 for workloads on a separate subnet.
  public init(hosts: Int, tag: String = "t", singleNetwork: Bool = false) throws {
    smcpair = try Tools.product("smcpair")
    name = "\(tag)\(getpid() % 100_000)"
    stateRoot = try TemporaryDirectory("smcpair-lab")
    let common = ["--name", name, "--state-root", stateRoot.path]
    let started = Date()
    let up = try Tools.run(
      [smcpair, "lab", "up", "--hosts", "\(hosts)"] + (singleNetwork ? ["--single-network"] : []) + common)
    let elapsed = Date().timeIntervalSince(started)
    guard up.status == 0 else {
      _ = try? Tools.run([smcpair, "lab", "down"] + common)
      throw NamespaceError(message: "smcpair lab up failed: \(up.stderr)")
    }
    status = try TestLab.readStatus(smcpair, common)
    upSeconds = elapsed
  }

  public var common: [String] { ["--name", name, "--state-root", stateRoot.path] }

  static func readStatus(_ smcpair: String, _ common: [String]) throws -> Status {
    let result = try Tools.run([smcpair, "lab", "status", "--json"] + common)
    return try JSONDecoder().decode(Status.self, from: result.stdoutData)
  }

  public func refresh() throws { status = try TestLab.readStatus(smcpair, common) }

  /// Runs `smcpair lab down`; returns its result.
  @discardableResult
  public func down() throws -> ProcessResult {
    try Tools.run([smcpair, "lab", "down"] + common)
  }

  /// Starts a command inside host `index` (0-based) in the background.
  public func start(_ index: Int, _ arguments: [String], log: String) throws -> BackgroundProcess {
    try BackgroundProcess(
      ["/usr/sbin/ip", "netns", "exec", status.hosts[index].namespace] + arguments, stdout: log + ".out",
      stderr: log + ".err")
  }

  /// Runs a command inside host `index` and waits.
  public func run(_ index: Int, _ arguments: [String]) throws -> ProcessResult {
    try Tools.run(["ip", "netns", "exec", status.hosts[index].namespace] + arguments)
  }

  deinit { _ = try? down() }
}
