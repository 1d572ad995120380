import Foundation
import Inventory
import SSHTransport

/// What a host offers for capturing, read with one fixed script (`hosts check` and the
/// capture preflight share it): architecture, OS, kernel, the SMC module, tcpdump (and whether
/// it writes nanosecond timestamps), `smcdump-ex`, smc-tools, and the helpers the tool engines
/// use (`sha256sum`, `timeout`, `setsid`).
public struct HostFacts: Sendable, Equatable {
  public var architecture = ""
  public var os = ""
  public var kernel = ""
  public var smcModuleLoaded = false
  /// tcpdump's path, nil when the host has none.
  public var tcpdump: String?
  public var tcpdumpVersion = ""
  /// tcpdump knows `--time-stamp-precision=nano`.
  public var tcpdumpNanoseconds = false
  /// `smcdump-ex`'s path: the inventory's `smcdump_ex:` when set (nil when that file is not
  /// executable; PATH is not searched then), else the one on PATH.
  public var smcdumpEx: String?
  /// smc-tools' `smcss`, nil when smc-tools are not installed.
  public var smcTools: String?
  public var hasSHA256Sum = false
  public var hasTimeout = false
  public var hasSetsid = false

  public init() {}

  /// The script; `$1` is the inventory's `smcdump_ex:` path or empty. One line: some login
  /// shells refuse newlines inside quotes. Every answer is a `key=value` line.
  static let script =
    #"t=$1; echo "arch=$(uname -m)"; echo "os=$(uname -s)"; echo "kernel=$(uname -r)"; "#
    + #"if [ -d /sys/module/smc ]; then echo smc_module=loaded; fi; "#
    + #"p=$(command -v tcpdump 2>/dev/null); if [ -z "$p" ]; then for c in /usr/sbin/tcpdump /usr/bin/tcpdump /sbin/tcpdump; do if [ -x "$c" ]; then p=$c; break; fi; done; fi; "#
    + #"if [ -n "$p" ]; then echo "tcpdump=$p"; echo "tcpdump_version=$("$p" --version 2>&1 | head -n 1)"; "#
    + #"if "$p" --help 2>&1 | grep -q time-stamp-precision; then echo tcpdump_nano=yes; fi; fi; "#
    + #"if [ -n "$t" ]; then s=$t; else s=$(command -v smcdump-ex 2>/dev/null); fi; "#
    + #"if [ -n "$s" ] && [ -x "$s" ]; then echo "smcdump_ex=$s"; fi; "#
    + #"echo "smcss=$(command -v smcss 2>/dev/null)"; "#
    + #"for c in sha256sum timeout setsid; do if command -v $c >/dev/null 2>&1; then echo "$c=yes"; fi; done"#

  /// The command line for `host`.
  static func command(for host: InventoryHost) -> String {
    RemoteCommand.join(["sh", "-c", script, "smcpair-facts", host.smcdumpExPath ?? ""])
  }

  /// Reads the script's output; unknown lines are ignored (a login banner, a motd).
  public static func parse(_ output: String) -> HostFacts {
    var facts = HostFacts()
    for line in output.split(whereSeparator: \.isNewline) {
      guard let equals = line.firstIndex(of: "=") else { continue }
      let key = line[..<equals]
      let value = printable(line[line.index(after: equals)...].prefix(300))
      switch key {
      case "arch": facts.architecture = value
      case "os": facts.os = value
      case "kernel": facts.kernel = value
      case "smc_module": facts.smcModuleLoaded = value == "loaded"
      case "tcpdump": facts.tcpdump = value.isEmpty ? nil : value
      case "tcpdump_version": facts.tcpdumpVersion = value
      case "tcpdump_nano": facts.tcpdumpNanoseconds = value == "yes"
      case "smcdump_ex": facts.smcdumpEx = value.isEmpty ? nil : value
      case "smcss": facts.smcTools = value.isEmpty ? nil : value
      case "sha256sum": facts.hasSHA256Sum = value == "yes"
      case "timeout": facts.hasTimeout = value == "yes"
      case "setsid": facts.hasSetsid = value == "yes"
      default: continue
      }
    }
    return facts
  }

  /// Runs the script on `session`.
  static func read(_ session: SSHSession, host: InventoryHost, limits: CommandLimits? = nil) throws(SSHError)
    -> HostFacts
  {
    let output = try session.run(
      command(for: host), purpose: "reading the host's capture facts", limits: limits)
    return parse(output.stdoutText)
  }

  /// Whether this kernel can mirror SMC onto a dump device: only Alibaba Cloud Linux / Anolis
  /// (ANCK) kernels from 5.10.134-18 on (5.10.134-17.3 with smcdump-ex's `--legacy` header).
  /// The agent's `hello` probes the kernel itself; this reads only the release.
  public var dumpSupport: DumpSupport { DumpSupport(kernel: kernel) }
}

/// What a kernel release says about the SMC dump.
public enum DumpSupport: Sendable, Equatable, CustomStringConvertible {
  /// An ANCK kernel new enough for the dump.
  case anck
  /// ANCK 5.10.134-17.x: the dump exists with the older, unpublished header (`--legacy`).
  case anckLegacy
  /// An ANCK kernel older than the dump.
  case anckTooOld
  /// An ANCK kernel of a later series than 5.10.134: the dump is not documented for it (the
  /// agent's netlink probe, or smcdump-ex itself, decides).
  case anckUndocumented
  /// Not an ANCK kernel: no dump device; SMC-R's CDC/LLC can still be captured as RoCEv2.
  case none

  /// From a release such as `5.10.134-18.al8.x86_64` or `5.10.134-17.3.an8.x86_64`.
  public init(kernel: String) {
    let parts = kernel.split(separator: "-", maxSplits: 1)
    let isANCK =
      parts.count == 2
      && parts[1].split(separator: ".").contains { word in
        (word.hasPrefix("al") || word.hasPrefix("an")) && word.dropFirst(2).allSatisfy(\.isNumber)
          && word.count > 2
      }
    guard isANCK else {
      self = .none
      return
    }
    let base = parts[0].split(separator: ".").compactMap { Int($0) }
    if base.lexicographicallyPrecedes([5, 10, 134]) {
      self = .anckTooOld
      return
    }
    if [5, 10, 134].lexicographicallyPrecedes(base) {
      self = .anckUndocumented
      return
    }
    let build = parts[1].split(separator: ".").prefix(2).compactMap { Int($0) }
    switch (build.first ?? 0, build.count > 1 ? build[1] : 0) {
    case (let major, _) where major >= 18: self = .anck
    case (17, let minor) where minor >= 3: self = .anckLegacy
    default: self = .anckTooOld
    }
  }

  public var description: String {
    switch self {
    case .anck: return "ANCK kernel with the SMC dump"
    case .anckLegacy: return "ANCK 5.10.134-17.x: dump with the legacy header (smcdump-ex --legacy)"
    case .anckTooOld: return "ANCK kernel older than the SMC dump (needs 5.10.134-18)"
    case .anckUndocumented: return "ANCK kernel after 5.10.134: SMC dump not documented (the agent probes it)"
    case .none: return "no SMC dump in this kernel (capture RoCEv2 on the RDMA NIC instead)"
    }
  }

  /// The kernel has a dump device of some header version.
  public var available: Bool { self == .anck || self == .anckLegacy }
}

/// `text` as a host sent it, safe to show in a terminal or a log: printable ASCII kept, every
/// other byte (escape sequences, control characters) shown as `?`.
func printable<Text: StringProtocol>(_ text: Text) -> String {
  String(decoding: text.utf8.map { (0x20...0x7E).contains($0) ? $0 : UInt8(ascii: "?") }, as: UTF8.self)
}
