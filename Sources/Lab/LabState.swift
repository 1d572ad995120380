import Foundation
import Support

/// One lab host: a network namespace with sshd and a stand-in SMC dump device.
public struct LabHost: Codable, Sendable, Equatable {
  public var name: String
  public var namespace: String
  /// The management address: sshd listens here (eth0); the inventory's `address`.
  public var address: String
  public var port: Int
  /// The data address (data0 on the lab's data bridge) that workloads and the SMC peer
  /// emulator use, as SMC-R traffic uses a RoCE subnet apart from the management network;
  /// nil in a single-network lab, where the management address carries everything.
  public var dataAddress: String?
  /// The root-namespace end of the host's data0 veth pair (on the data bridge), if any.
  public var dataRootLink: String?
  /// The stand-in for `smc-dummyXXXX`: an ifb device (this kernel has no `dummy` type); frames
  /// sent on it are captured once, as outgoing, like on the real one.
  public var dumpDevice: String
  /// The root-namespace end of the host's eth0 veth pair (on the lab bridge).
  public var rootLink: String
  /// Per-host folder: host key, sshd config, log, pid file, private /run.
  public var directory: String
  public var sshdPID: Int32?

  enum CodingKeys: String, CodingKey {
    case name, namespace, address, port
    case dataAddress = "data_address"
    case dataRootLink = "data_root_link"
    case dumpDevice = "dump_device"
    case rootLink = "root_link"
    case directory
    case sshdPID = "sshd_pid"
  }
}

/// Everything `lab up` made, written before each step so that `lab down` can undo a crashed
/// `up` from the recorded names.
public struct LabState: Codable, Sendable, Equatable {
  public var name: String
  public var directory: String
  public var bridge: String
  /// The root namespace's address on the bridge (the workstation side).
  public var bridgeAddress: String
  public var prefixLength: Int
  /// The bridge joining the hosts' data0 interfaces; nil in a single-network lab. The root
  /// namespace has no address on it: like a RoCE subnet, it is not reachable from the
  /// workstation that logs in to the hosts.
  public var dataBridge: String?
  public var inventory: String
  public var identity: String
  public var knownHosts: String
  public var hosts: [LabHost]
  /// True once `up` finished every step.
  public var complete: Bool

  /// How the hosts are wired: a data bridge means management and data networks.
  public var layout: LabNetworkLayout { dataBridge == nil ? .single : .managementAndData }

  enum CodingKeys: String, CodingKey {
    case name, directory, bridge
    case bridgeAddress = "bridge_address"
    case prefixLength = "prefix_length"
    case dataBridge = "data_bridge"
    case inventory, identity
    case knownHosts = "known_hosts"
    case hosts, complete
  }

  static func load(from path: String) throws -> LabState {
    try JSONDecoder().decode(LabState.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
  }

  func save(to path: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    let data = try encoder.encode(self)
    let temporary = path + ".tmp"
    try data.write(to: URL(fileURLWithPath: temporary))
    guard rename(temporary, path) == 0 else {
      throw LabError("cannot write \(path): \(Errno.current)")
    }
  }
}

/// A lab operation that failed, with what to do about it.
public struct LabError: Error, CustomStringConvertible, Sendable {
  public var message: String
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}
