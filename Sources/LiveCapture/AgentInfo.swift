import Support

#if canImport(Glibc)
  import Glibc
#endif

/// Facts about this agent and host, for `hello` and file headers.
public enum AgentInfo {
  public static let version = "0.2.0"
  /// Set at release time; "dev" for local builds.
  public static let buildID = "dev"

  static func uname() -> utsname {
    var info = utsname()
    _ = Glibc.uname(&info)
    return info
  }

  public static var kernel: String { String(cStringField: uname().release) }
  public static var machine: String { String(cStringField: uname().machine) }
  public static var hostname: String { String(cStringField: uname().nodename) }
  public static var osDescription: String { "\(String(cStringField: uname().sysname)) \(kernel)" }
}
