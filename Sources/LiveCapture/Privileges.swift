import AgentProtocol
import Support

#if canImport(Glibc)
  import Glibc
#endif

/// Root or the two capabilities capture needs.
public enum Privileges {
  public static func current() -> HelloReply.Privileges {
    var effective: UInt64 = 0
    if let status = FileText.read("/proc/self/status") {
      for line in status.split(separator: "\n") where line.hasPrefix("CapEff:") {
        effective = UInt64(line.dropFirst(7).filter { !$0.isWhitespace }, radix: 16) ?? 0
      }
    }
    // CAP_NET_ADMIN = 12, CAP_NET_RAW = 13.
    return HelloReply.Privileges(
      root: geteuid() == 0, netRaw: effective & (1 << 13) != 0, netAdmin: effective & (1 << 12) != 0)
  }

  public static func require() throws(AgentProtocolError) {
    guard current().sufficient else {
      throw AgentProtocolError(
        .privileges,
        "capturing needs root or CAP_NET_RAW and CAP_NET_ADMIN; run the agent with 'become: sudo' (sudo -n) or grant the capabilities (setcap cap_net_raw,cap_net_admin+ep smcpair-agent)"
      )
    }
  }

  public static func interfaces() -> [String] {
    guard let directory = opendir("/sys/class/net") else { return [] }
    defer { closedir(directory) }
    var names: [String] = []
    while let entry = readdir(directory) {
      let name = String(cStringField: entry.pointee.d_name)
      if !name.hasPrefix(".") { names.append(name) }
    }
    return names.sorted()
  }
}
