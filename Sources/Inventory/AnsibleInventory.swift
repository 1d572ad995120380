import Foundation
import Yams

/// Reads Ansible inventories (INI and YAML) into an `Inventory` without pairs; pairs come
/// from `--client/--server` or a pairs overlay file (`InventoryParser.loadPairs`).
///
/// Variables used: `ansible_host`, `ansible_port`, `ansible_user`,
/// `ansible_ssh_private_key_file`, `ansible_become` (and the older `ansible_ssh_host`,
/// `ansible_ssh_port`, `ansible_ssh_user`), plus smcpair's own `smcpair_nics`,
/// `smcpair_smc_dump`, `smcpair_agent`, `smcpair_agent_root`, `smcpair_known_hosts`,
/// `smcpair_data_address`, `smcpair_engine`, `smcpair_deploy_agent`, `smcpair_smcdump_ex`. Other
/// variables are Ansible's business and ignored. Precedence as in Ansible: `all` vars, then
/// parent groups before their children, then host vars.
public enum AnsibleInventory {
  /// A variable with where it was set.
  struct Value {
    var text: String
    var list: [String]?
    var location: SourceLocation
  }

  struct Group {
    var hosts: [String] = []
    var children: [String] = []
    var vars: [String: Value] = [:]
  }

  /// What both syntaxes produce before hosts are built.
  struct Collected {
    var file: String
    var base: String
    var groups: [String: Group] = ["all": Group()]
    /// Every host once, in the order first named, with where it was first named.
    var hostOrder: [(name: String, location: SourceLocation)] = []
    var hostNames: Set<String> = []
    var hostVars: [String: [String: Value]] = [:]

    mutating func addHost(_ name: String, group: String, location: SourceLocation) throws(InventoryError) {
      if !hostNames.contains(name) {
        guard hostOrder.count < AnsibleInventory.maximumHosts else {
          throw InventoryError(
            location, "more than \(AnsibleInventory.maximumHosts) hosts; split the inventory")
        }
        hostOrder.append((name, location))
        hostNames.insert(name)
        hostVars[name] = [:]
      }
      groups[group, default: Group()].hosts.append(name)
    }
  }

  /// True when `text` looks like an Ansible INI inventory rather than YAML.
  public static func looksLikeINI(_ text: String) -> Bool {
    for raw in text.split(separator: "\n") {
      let line = raw.trimmingCharacters(in: .whitespaces)
      if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") || line == "---" { continue }
      if line.hasPrefix("-") || line.hasPrefix("{") { return false }
      return line.hasPrefix("[") || (line.contains("=") && !line.contains(": ")) || !line.contains(":")
    }
    return false
  }

  // MARK: - INI

  public static func parseINI(_ text: String, file: String, baseDirectory: String) throws(InventoryError)
    -> Inventory
  {
    var collected = Collected(file: file, base: baseDirectory)
    enum Section {
      case hosts(String)
      case vars(String)
      case children(String)
    }
    var section = Section.hosts("ungrouped")
    for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
      let lineNumber = index + 1
      let line = raw.trimmingCharacters(in: .whitespaces)
      let indent = raw.prefix { $0 == " " || $0 == "\t" }.count
      let at = SourceLocation(file: file, line: lineNumber, column: indent + 1)
      if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
      if line.hasPrefix("[") {
        guard line.hasSuffix("]") else { throw InventoryError(at, "a section header must end with ']'") }
        let inside = String(line.dropFirst().dropLast())
        let parts = inside.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count <= 2, let name = parts.first, Walker.namePattern(name) else {
          throw InventoryError(
            at, "'[\(inside)]' is not a group header; write [group], [group:vars] or [group:children]")
        }
        switch parts.count == 2 ? parts[1] : "" {
        case "": section = .hosts(name)
        case "vars": section = .vars(name)
        case "children": section = .children(name)
        default:
          throw InventoryError(
            at, "unknown section suffix ':\(parts[1])' in '[\(inside)]'; Ansible knows :vars and :children")
        }
        collected.groups[name, default: Group()] = collected.groups[name] ?? Group()
        continue
      }
      switch section {
      case .hosts(let group):
        let words = try splitWords(line, at: at)
        guard let first = words.first else {
          throw InventoryError(at, "a host line needs a host name, e.g. web1 ansible_host=192.0.2.10")
        }
        let names = try expand(first, at: at)
        var vars: [String: Value] = [:]
        for word in words.dropFirst() {
          let (key, value) = try keyValue(word, at: at)
          vars[key] = Value(text: value, list: nil, location: at)
        }
        for name in names {
          guard Walker.namePattern(name) else {
            throw InventoryError(at, "host name '\(name)' may use letters, digits, '-', '_' and '.' only")
          }
          try collected.addHost(name, group: group, location: at)
          collected.hostVars[name, default: [:]].merge(vars) { $1 }
        }
      case .vars(let group):
        let (key, value) = try keyValue(line, at: at, spacesAllowed: true)
        collected.groups[group, default: Group()].vars[key] = Value(text: value, list: nil, location: at)
      case .children(let group):
        guard Walker.namePattern(line) else {
          throw InventoryError(at, "'\(line)' is not a group name (one child group per line)")
        }
        collected.groups[group, default: Group()].children.append(line)
        collected.groups[line] = collected.groups[line] ?? Group()
      }
    }
    return try build(collected)
  }

  /// Splits a host line into words; double or single quotes keep spaces inside a value.
  static func splitWords(_ line: String, at: SourceLocation) throws(InventoryError) -> [String] {
    var words: [String] = []
    var current = ""
    var quote: Character?
    for character in line {
      if let open = quote {
        if character == open { quote = nil } else { current.append(character) }
      } else if character == "\"" || character == "'" {
        quote = character
      } else if character == " " || character == "\t" {
        if !current.isEmpty { words.append(current) }
        current = ""
      } else if character == "#" && current.isEmpty {
        break
      } else {
        current.append(character)
      }
    }
    if quote != nil { throw InventoryError(at, "a quoted value is not closed") }
    if !current.isEmpty { words.append(current) }
    return words
  }

  static func keyValue(_ text: String, at: SourceLocation, spacesAllowed: Bool = false) throws(InventoryError)
    -> (String, String)
  {
    guard let equals = text.firstIndex(of: "=") else {
      throw InventoryError(at, "'\(text)' is not key=value")
    }
    let key = text[..<equals].trimmingCharacters(in: .whitespaces)
    var value = text[text.index(after: equals)...].trimmingCharacters(in: .whitespaces)
    if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
      value = String(value.dropFirst().dropLast())
    }
    guard !key.isEmpty, !key.contains(" ") || spacesAllowed else {
      throw InventoryError(at, "'\(text)' is not key=value")
    }
    return (key, value)
  }

  /// `web[01:03].example` → web01.example, web02.example, web03.example (numeric ranges).
  static func expand(_ pattern: String, at: SourceLocation) throws(InventoryError) -> [String] {
    guard let open = pattern.firstIndex(of: "["), let close = pattern.firstIndex(of: "]"), open < close else {
      return [pattern]
    }
    let range = pattern[pattern.index(after: open)..<close].split(separator: ":")
    guard range.count == 2, let low = Int(range[0]), let high = Int(range[1]), low <= high, high - low < 10000
    else {
      throw InventoryError(at, "'\(pattern)': a host range is [first:last] with numbers, e.g. web[01:20]")
    }
    let width = range[0].count
    var out: [String] = []
    for number in low...high {
      var digits = String(number)
      if range[0].hasPrefix("0") {
        digits = String(repeating: "0", count: max(0, width - digits.count)) + digits
      }
      out += try expand(
        String(pattern[..<open]) + digits + String(pattern[pattern.index(after: close)...]), at: at)
      // Several ranges multiply: stop before a pattern becomes millions of hosts.
      guard out.count <= maximumHosts else {
        throw InventoryError(at, "'\(pattern)' names more than \(maximumHosts) hosts; split it")
      }
    }
    return out
  }

  /// More hosts than any capture could use: a pattern or an inventory beyond it is a mistake.
  static let maximumHosts = 10_000

  // MARK: - YAML

  static func parseYAML(_ root: Node, file: String, baseDirectory: String) throws(InventoryError) -> Inventory
  {
    var collected = Collected(file: file, base: baseDirectory)
    let walker = Walker(file: file, base: baseDirectory)
    // YAML aliases can reuse a group many times over (each reuse doubling the walk): count
    // the groups walked, not the text.
    var walked = 0
    func group(_ name: String, _ node: Node) throws(InventoryError) {
      walked += 1
      guard walked <= AnsibleInventory.maximumHosts else {
        throw walker.fail(
          node, "more than \(AnsibleInventory.maximumHosts) groups (YAML aliases?); split the inventory")
      }
      collected.groups[name] = collected.groups[name] ?? Group()
      if case .scalar(let scalar) = node, scalar.string.isEmpty || scalar.tag.description.hasSuffix("null") {
        return
      }
      for (key, _, value) in try walker.entries(
        node, what: "group '\(name)'", allowed: ["hosts", "vars", "children"])
      {
        switch key {
        case "hosts":
          if case .scalar = value { continue }
          for (host, keyNode, vars) in try walker.entries(value, what: "hosts of '\(name)'", allowed: nil) {
            guard Walker.namePattern(host) else {
              throw walker.fail(keyNode, "host name '\(host)' may use letters, digits, '-', '_' and '.' only")
            }
            try collected.addHost(host, group: name, location: walker.location(keyNode))
            if case .mapping = vars {
              for (variable, value) in try variables(vars, walker) {
                collected.hostVars[host, default: [:]][variable] = value
              }
            }
          }
        case "vars":
          for (variable, value) in try variables(value, walker) {
            collected.groups[name, default: Group()].vars[variable] = value
          }
        case "children":
          if case .scalar = value { continue }
          for (child, keyNode, childNode) in try walker.entries(
            value, what: "children of '\(name)'", allowed: nil)
          {
            guard Walker.namePattern(child) else {
              throw walker.fail(
                keyNode, "group name '\(child)' may use letters, digits, '-', '_' and '.' only")
            }
            collected.groups[name, default: Group()].children.append(child)
            try group(child, childNode)
          }
        default: break
        }
      }
    }
    for (name, keyNode, node) in try walker.entries(root, what: "the Ansible inventory", allowed: nil) {
      guard Walker.namePattern(name) else {
        throw walker.fail(keyNode, "group name '\(name)' may use letters, digits, '-', '_' and '.' only")
      }
      try group(name, node)
    }
    return try build(collected)
  }

  static func variables(_ node: Node, _ walker: Walker) throws(InventoryError) -> [String: Value] {
    var out: [String: Value] = [:]
    for (key, _, value) in try walker.entries(node, what: "variables", allowed: nil) {
      switch value {
      case .scalar(let scalar):
        out[key] = Value(text: scalar.string, list: nil, location: walker.location(value))
      case .sequence:
        let items = try walker.list(value, key).map(\.0)
        out[key] = Value(text: items.joined(separator: ","), list: items, location: walker.location(value))
      default:
        // Mappings are Ansible's (e.g. structured vars); smcpair needs none of them.
        continue
      }
    }
    return out
  }

  // MARK: - hosts

  static func build(_ collected: Collected) throws(InventoryError) -> Inventory {
    // Group depth below 'all' orders the group variables (parents first).
    var depth: [String: Int] = [:]
    func assign(_ name: String, _ level: Int, _ path: [String]) throws(InventoryError) {
      if path.contains(name) {
        throw InventoryError(
          SourceLocation(file: collected.file, line: 0, column: 0),
          "groups form a cycle: \((path + [name]).joined(separator: " -> ")); a group cannot contain itself")
      }
      if let known = depth[name], known >= level { return }
      depth[name] = level
      for child in collected.groups[name]?.children ?? [] { try assign(child, level + 1, path + [name]) }
    }
    try assign("all", 0, [])
    for name in collected.groups.keys.sorted() where depth[name] == nil { try assign(name, 1, []) }
    // Members of every group, through children.
    func members(_ name: String, _ seen: inout Set<String>) -> [String] {
      guard seen.insert(name).inserted, let group = collected.groups[name] else { return [] }
      var out = group.hosts
      for child in group.children { out += members(child, &seen) }
      return out
    }
    var groupsOf: [String: [String]] = [:]
    var groups: [String: [String]] = [:]
    for name in collected.groups.keys {
      var seen: Set<String> = []
      var list: [String] = []
      for host in members(name, &seen) where !list.contains(host) { list.append(host) }
      if name != "all" {
        groups[name] = list
        for host in list { groupsOf[host, default: []].append(name) }
      }
    }
    guard !collected.hostOrder.isEmpty else {
      throw InventoryError(
        SourceLocation(file: collected.file, line: 1, column: 1),
        "this Ansible inventory names no hosts; add host lines (INI) or 'hosts:' entries (YAML)")
    }
    var hosts: [InventoryHost] = []
    for (name, location) in collected.hostOrder {
      var vars = collected.groups["all"]?.vars ?? [:]
      let ordered = (groupsOf[name] ?? []).sorted { (depth[$0] ?? 1, $0) < (depth[$1] ?? 1, $1) }
      for group in ordered { vars.merge(collected.groups[group]?.vars ?? [:]) { $1 } }
      vars.merge(collected.hostVars[name] ?? [:]) { $1 }
      hosts.append(try host(name, at: location, vars, collected))
    }
    return Inventory(path: collected.file, hosts: hosts, groups: groups, pairs: [])
  }

  static func host(
    _ name: String, at location: SourceLocation, _ vars: [String: Value], _ collected: Collected
  ) throws(InventoryError) -> InventoryHost {
    let walker = Walker(file: collected.file, base: collected.base)
    func value(_ keys: String...) -> Value? { keys.lazy.compactMap { vars[$0] }.first }
    var host = InventoryHost(name: name, address: name, location: location)
    if let address = value("ansible_host", "ansible_ssh_host") { host.address = address.text }
    if let port = value("ansible_port", "ansible_ssh_port") {
      guard let number = Int(port.text), (1...65535).contains(number) else {
        throw InventoryError(
          port.location, "host '\(name)': ansible_port must be a whole number from 1 to 65535")
      }
      host.port = number
    }
    if let user = value("ansible_user", "ansible_ssh_user") { host.user = user.text }
    if let key = value("ansible_ssh_private_key_file", "ansible_private_key_file") {
      host.identity = walker.path(key.text)
    }
    if let known = value("smcpair_known_hosts") { host.knownHosts = walker.path(known.text) }
    if let become = value("ansible_become") {
      switch become.text.lowercased() {
      case "true", "yes", "1", "on": host.become = .sudo
      case "false", "no", "0", "off": host.become = .none
      default:
        throw InventoryError(
          become.location, "host '\(name)': ansible_become must be true or false, not '\(become.text)'")
      }
    }
    if let nics = value("smcpair_nics") {
      host.nics = nics.list ?? nics.text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    }
    if let dump = value("smcpair_smc_dump") { host.smcDump = SMCDumpSetting(dump.text) }
    if let agent = value("smcpair_agent") {
      if let problem = Inventory.agentPathProblem(agent.text) {
        throw InventoryError(agent.location, "host '\(name)': smcpair_agent: \(problem)")
      }
      host.agentPath = agent.text
    }
    if let root = value("smcpair_agent_root") { host.agentRoot = root.text }
    if let data = value("smcpair_data_address") { host.dataAddress = data.text }
    if let engine = value("smcpair_engine") {
      guard let setting = CaptureEngineSetting(rawValue: engine.text) else {
        throw InventoryError(
          engine.location,
          "host '\(name)': smcpair_engine must be one of \(CaptureEngineSetting.choices), not '\(engine.text)'"
        )
      }
      host.engine = setting
    }
    if let deploy = value("smcpair_deploy_agent") {
      guard let allowed = Inventory.boolean(deploy.text) else {
        throw InventoryError(
          deploy.location, "host '\(name)': smcpair_deploy_agent must be true or false, not '\(deploy.text)'")
      }
      host.deployAgent = allowed
    }
    if let tool = value("smcpair_smcdump_ex") {
      if let problem = Inventory.toolPathProblem(tool.text, key: "smcpair_smcdump_ex") {
        throw InventoryError(tool.location, "host '\(name)': \(problem)")
      }
      host.smcdumpExPath = tool.text
    }
    return host
  }
}
