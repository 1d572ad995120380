import AgentProtocol
import CLinuxNet
import ChildProcess
import Support

#if canImport(Glibc)
  import Glibc
#endif

/// What the kernel offers for the SMC dump (ANCK's `SMC_GEN_NETLINK` commands 251-253).
public struct SMCDumpProbe: Sendable {
  public static let family = "SMC_GEN_NETLINK"
  public static let getCommand: UInt8 = 251
  public static let setCommand: UInt8 = 252
  public static let resetCommand: UInt8 = 253
  /// SMC_NLA_DUMP_DEV_NAME.
  public static let deviceNameAttribute: UInt16 = 1

  public var familyID: Int32?
  public var hasSet: Bool
  public var hasReset: Bool

  public var supported: Bool { familyID != nil && hasSet && hasReset }

  /// One line for people and for the `hello` reply.
  public var detail: String {
    guard let familyID else {
      return
        "SMC dump unsupported on this kernel: no \(Self.family) generic netlink family (an Alibaba Cloud Linux kernel >= 5.10.134-18 has it)"
    }
    if !supported {
      return
        "SMC dump unsupported on this kernel: \(Self.family) (family \(familyID)) lacks the dump commands 252/253"
    }
    return "SMC dump supported (\(Self.family) family \(familyID))"
  }

  /// The id of any generic netlink family, nil when the kernel has none of that name (used
  /// for SMC_GEN_NETLINK; public so the netlink code can be checked against a family that
  /// exists everywhere, such as "nlctrl").
  public static func familyID(named name: String) -> Int32? {
    var commands: UInt32 = 0
    let id = smcpair_genl_family(name, &commands)
    return id > 0 ? id : nil
  }

  /// Asks the kernel.
  public static func probe() -> SMCDumpProbe {
    var commands: UInt32 = 0
    let id = smcpair_genl_family(family, &commands)
    guard id > 0 else { return SMCDumpProbe(familyID: nil, hasSet: false, hasReset: false) }
    return SMCDumpProbe(familyID: id, hasSet: commands & 0b010 != 0, hasReset: commands & 0b100 != 0)
  }
}

/// The `smc-dummyXXXX` device the agent creates when the kernel supports the dump. Every
/// device is recorded in `<root>/leftovers/` before it is created, so `cleanup` (or the next
/// start) removes it even after the agent was killed.
public final class SMCDumpDevice: @unchecked Sendable {
  public let name: String
  let familyID: Int32
  let recordPath: String

  /// A name like the real tool's: `smc-dummy` + 4 hex digits.
  public static func newName() -> String {
    let value = UInt16.random(in: 0...0xFFFF)
    let hex = String(value, radix: 16)
    return "smc-dummy" + String(repeating: "0", count: 4 - hex.count) + hex
  }

  static func leftoverFolder(_ root: String) -> String { "\(root)/leftovers" }

  /// Creates the device, brings it up and points the kernel's dump at it.
  public static func create(probe: SMCDumpProbe, root: String) throws(AgentProtocolError) -> SMCDumpDevice {
    guard probe.supported, let family = probe.familyID else {
      throw AgentProtocolError(.smcDumpUnsupported, probe.detail)
    }
    let name = newName()
    let folder = leftoverFolder(root)
    mkdir(folder, 0o700)
    let record = "\(folder)/\(name)"
    let fd = open(record, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else {
      throw AgentProtocolError(
        .io, "cannot record the dump device in \(record): \(Errno.current)")
    }
    close(fd)
    let device = SMCDumpDevice(name: name, familyID: family, recordPath: record)
    do {
      try run(["ip", "link", "add", name, "type", "dummy"])
      try run(["ip", "link", "set", name, "up"])
    } catch {
      device.remove()
      throw error
    }
    let result = smcpair_genl_command(family, SMCDumpProbe.setCommand, SMCDumpProbe.deviceNameAttribute, name)
    guard result == 0 else {
      device.remove()
      throw AgentProtocolError(
        .smcDumpUnsupported, "the kernel refused to dump to \(name): \(Errno(rawValue: -result))")
    }
    return device
  }

  init(name: String, familyID: Int32, recordPath: String) {
    self.name = name
    self.familyID = familyID
    self.recordPath = recordPath
  }

  /// Resets the kernel's dump, deletes the device and its record. Safe to repeat.
  public func remove() {
    _ = smcpair_genl_command(familyID, SMCDumpProbe.resetCommand, 0, nil)
    _ = try? ChildProcess.run(["ip", "link", "del", name], timeout: 10)
    unlink(recordPath)
  }

  /// Removes devices recorded by earlier agents that did not clean up (killed). Returns them.
  @discardableResult
  public static func cleanupLeftovers(root: String) -> [String] {
    let folder = leftoverFolder(root)
    guard let directory = opendir(folder) else { return [] }
    var names: [String] = []
    while let entry = readdir(directory) {
      let name = String(cStringField: entry.pointee.d_name)
      if name.hasPrefix("smc-dummy") { names.append(name) }
    }
    closedir(directory)
    let probe = SMCDumpProbe.probe()
    for name in names {
      SMCDumpDevice(name: name, familyID: probe.familyID ?? 0, recordPath: "\(folder)/\(name)").remove()
    }
    return names
  }

  static func run(_ arguments: [String]) throws(AgentProtocolError) {
    let output: ProcessOutput
    do {
      output = try ChildProcess.run(arguments, timeout: 10)
    } catch {
      throw AgentProtocolError(.smcDumpUnsupported, error.description)
    }
    guard output.succeeded else {
      throw AgentProtocolError(
        .smcDumpUnsupported,
        "\(arguments.joined(separator: " ")) failed: \(output.stderrText.trimmingCharacters(in: [" ", "\n"]))"
      )
    }
  }
}

extension String {
  func trimmingCharacters(in set: Set<Character>) -> String {
    var s = Substring(self)
    while let first = s.first, set.contains(first) { s = s.dropFirst() }
    while let last = s.last, set.contains(last) { s = s.dropLast() }
    return String(s)
  }
}
