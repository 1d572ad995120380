import Support

// The SMC dump setting is shared with the agent protocol (a plan carries it to the agent);
// inventory users get it with this import.
@_exported import enum AgentProtocol.SMCDumpSetting

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// How commands on a host get root privileges.
public enum Become: String, Sendable, Equatable, CaseIterable {
  /// `sudo -n` (never a password prompt).
  case sudo
  /// Already root, or capture privileges granted otherwise.
  case none
}

/// What captures on a host: smcpair's own agent, the host's tcpdump, Alibaba Cloud Linux's
/// `smcdump-ex`, or `auto` (chosen per host from what the preflight finds; docs/capture.md).
public enum CaptureEngineSetting: String, Sendable, Equatable, CaseIterable {
  case auto, agent, tcpdump
  case smcdumpEx = "smcdump-ex"

  /// The accepted words, for error messages and `--help`.
  public static let choices = allCases.map(\.rawValue).joined(separator: "|")
}

/// One host of an inventory, with defaults applied.
public struct InventoryHost: Sendable, Equatable {
  public var name: String
  public var address: String
  public var port: Int
  public var user: String
  /// Absolute path of the private key file, if one is named.
  public var identity: String?
  /// Absolute path of the known_hosts file to check host keys against, if named.
  public var knownHosts: String?
  /// Name of another inventory host (or an `ssh://` target) to jump through.
  public var jump: String?
  public var become: Become
  public var nics: [String]
  /// The address the host's SMC traffic uses when it is not `address` (SMC-R fleets log in
  /// over a management network and run SMC over RoCE subnets); `{server}`/`{client}` in
  /// workload commands stand for it. nil: `address` carries the traffic too.
  public var dataAddress: String?
  public var smcDump: SMCDumpSetting
  /// Where the agent lives (or is deployed to) on the host.
  public var agentPath: String
  /// The agent's state folder on the host (`--root`); nil means the agent's default
  /// (`/var/lib/smcpair/agent` as root).
  public var agentRoot: String?
  /// Which capture engine runs here (`engine:`).
  public var engine: CaptureEngineSetting
  /// May smcpair copy its agent to this host (`deploy_agent:`)? Some policies forbid copying
  /// binaries to production hosts; `auto` then picks smcdump-ex or tcpdump.
  public var deployAgent: Bool
  /// Where `smcdump-ex` is on the host (`smcdump_ex:`); nil: found on PATH.
  public var smcdumpExPath: String?
  /// File and line where the host is defined.
  public var location: SourceLocation

  /// The address workloads reach the host at: `dataAddress` when set, else `address`.
  public var trafficAddress: String { dataAddress ?? address }

  public init(
    name: String, address: String, port: Int = 22, user: String = "root", identity: String? = nil,
    knownHosts: String? = nil, jump: String? = nil, become: Become = .none, nics: [String] = ["eth0"],
    dataAddress: String? = nil, smcDump: SMCDumpSetting = .auto,
    agentPath: String = Inventory.defaultAgentPath, agentRoot: String? = nil,
    engine: CaptureEngineSetting = .auto, deployAgent: Bool = true, smcdumpExPath: String? = nil,
    location: SourceLocation = SourceLocation(file: "-", line: 0, column: 0)
  ) {
    self.name = name
    self.address = address
    self.port = port
    self.user = user
    self.identity = identity
    self.knownHosts = knownHosts
    self.jump = jump
    self.become = become
    self.nics = nics
    self.dataAddress = dataAddress
    self.smcDump = smcDump
    self.agentPath = agentPath
    self.agentRoot = agentRoot
    self.engine = engine
    self.deployAgent = deployAgent
    self.smcdumpExPath = smcdumpExPath
    self.location = location
  }
}

/// A client/server pair to capture.
public struct InventoryPair: Sendable, Equatable {
  public var name: String
  public var client: String
  public var server: String
  /// BPF filter for both sides; nil means the capture default.
  public var filter: String?
  /// Interfaces to capture instead of the hosts' `nics`.
  public var interfaces: [String]?
  public var location: SourceLocation

  public init(
    name: String, client: String, server: String, filter: String? = nil, interfaces: [String]? = nil,
    location: SourceLocation = SourceLocation(file: "-", line: 0, column: 0)
  ) {
    self.name = name
    self.client = client
    self.server = server
    self.filter = filter
    self.interfaces = interfaces
    self.location = location
  }
}

/// A parsed, validated inventory.
public struct Inventory: Sendable, Equatable {
  /// The file it came from (absolute), or a label for inventories built in memory.
  public var path: String
  public var hosts: [InventoryHost]
  public var groups: [String: [String]]
  public var pairs: [InventoryPair]

  public init(
    path: String, hosts: [InventoryHost], groups: [String: [String]] = [:], pairs: [InventoryPair] = []
  ) {
    self.path = path
    self.hosts = hosts
    self.groups = groups
    self.pairs = pairs
  }

  public func host(_ name: String) -> InventoryHost? { hosts.first { $0.name == name } }
  public func pair(_ name: String) -> InventoryPair? { pairs.first { $0.name == name } }

  public static let defaultAgentPath = "/usr/local/bin/smcpair-agent"

  /// `true`/`false` and the YAML/Ansible spellings of them (`yes`, `no`, `on`, `off`, 1, 0).
  public static func boolean(_ text: String) -> Bool? {
    switch text.lowercased() {
    case "true", "yes", "1", "on": return true
    case "false", "no", "0", "off": return false
    default: return nil
    }
  }

  /// Why `path` cannot name a tool on the host (`smcdump_ex:`), or nil: absolute, no `..`, and
  /// no characters a shell would read specially (it is run as given, never through PATH).
  public static func toolPathProblem(_ path: String, key: String) -> String? {
    guard path.hasPrefix("/"), !path.split(separator: "/").contains("..") else {
      return "\(key) '\(path)' must be an absolute path without '..' (e.g. /usr/bin/smcdump-ex)"
    }
    return nil
  }

  /// Why `path` cannot be an agent path, or nil. Only absolute paths: the digest check hashes
  /// the file at that path and then runs it; a relative one would hash a file in the login
  /// folder and run the one the remote PATH finds.
  public static func agentPathProblem(_ path: String) -> String? {
    guard path.hasPrefix("/") else {
      return
        "agent path '\(path)' must be absolute (e.g. /usr/local/bin/smcpair-agent): the file whose SHA-256 is checked must be the file that runs"
    }
    guard !path.split(separator: "/").contains("..") else {
      return "agent path '\(path)' must not contain '..'"
    }
    return nil
  }
}

/// A position in an inventory file.
public struct SourceLocation: Sendable, Equatable, CustomStringConvertible {
  public var file: String
  public var line: Int
  public var column: Int

  public init(file: String, line: Int, column: Int) {
    self.file = file
    self.line = line
    self.column = column
  }

  public var description: String { "\(file):\(line):\(column)" }
}

/// An inventory that cannot be used, with where and what to write instead.
public struct InventoryError: Error, CustomStringConvertible, Sendable, Equatable {
  public var location: SourceLocation
  public var message: String
  /// Set when the file itself could not be read (`errno`); then `location` has no line.
  public var systemError: Int32?

  public init(_ location: SourceLocation, _ message: String, systemError: Int32? = nil) {
    self.location = location
    self.message = message
    self.systemError = systemError
  }

  /// An inventory (or pairs) file that cannot be read at all.
  static func unreadable(_ what: String, path: String, errno err: Int32) -> InventoryError {
    InventoryError(
      SourceLocation(file: path, line: 0, column: 0),
      "cannot read \(what) \(path): \(Errno(rawValue: err))", systemError: err)
  }

  /// `file:line:column: message`, or just the message when the file could not be read.
  public var description: String { systemError != nil ? message : "\(location): \(message)" }
}
