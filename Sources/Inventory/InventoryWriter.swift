import JSON

/// Writes an inventory in the smcpair YAML format (used by the lab).
public enum InventoryWriter {
  /// YAML text for `inventory`; paths are written as given.
  public static func yaml(_ inventory: Inventory, header: String? = nil) -> String {
    var lines: [String] = []
    if let header {
      lines += header.split(separator: "\n", omittingEmptySubsequences: false).map { "# \($0)" }
    }
    lines.append("hosts:")
    for host in inventory.hosts {
      lines.append("  \(quote(host.name)):")
      lines.append("    address: \(quote(host.address))")
      lines.append("    port: \(host.port)")
      lines.append("    user: \(quote(host.user))")
      if let identity = host.identity { lines.append("    identity: \(quote(identity))") }
      if let knownHosts = host.knownHosts { lines.append("    known_hosts: \(quote(knownHosts))") }
      if let jump = host.jump { lines.append("    jump: \(quote(jump))") }
      lines.append("    become: \(host.become.rawValue)")
      if let data = host.dataAddress { lines.append("    data_address: \(quote(data))") }
      lines.append("    nics: [\(host.nics.map(quote).joined(separator: ", "))]")
      lines.append("    smc_dump: \(quote(host.smcDump.description))")
      lines.append("    agent: \(quote(host.agentPath))")
      if let root = host.agentRoot { lines.append("    agent_root: \(quote(root))") }
      if host.engine != .auto { lines.append("    engine: \(host.engine.rawValue)") }
      if !host.deployAgent { lines.append("    deploy_agent: false") }
      if let tool = host.smcdumpExPath { lines.append("    smcdump_ex: \(quote(tool))") }
    }
    if !inventory.groups.isEmpty {
      lines.append("groups:")
      for (name, members) in inventory.groups.sorted(by: { $0.key < $1.key }) {
        lines.append("  \(quote(name)): [\(members.map(quote).joined(separator: ", "))]")
      }
    }
    if !inventory.pairs.isEmpty {
      lines.append("pairs:")
      for pair in inventory.pairs {
        lines.append("  \(quote(pair.name)):")
        lines.append("    client: \(quote(pair.client))")
        lines.append("    server: \(quote(pair.server))")
        if let filter = pair.filter { lines.append("    filter: \(quote(filter))") }
        if let interfaces = pair.interfaces {
          lines.append("    interfaces: [\(interfaces.map(quote).joined(separator: ", "))]")
        }
      }
    }
    return lines.joined(separator: "\n") + "\n"
  }

  /// Double-quoted YAML scalar (always quoted: no surprises with `no`, `on`, `1e3`, ...). A
  /// JSON string literal is one (YAML 1.2 reads JSON).
  static func quote(_ text: String) -> String { JSONValue.quoted(text) }
}
