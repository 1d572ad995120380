/// The filter for the SMC dump device, derived from the user's capture filter.
///
/// Dump records are UDP frames that carry the SMC connection's IP addresses and ports, so a
/// filter written for the connection (`tcp port 443 and host 10.0.0.2`) matches them once
/// the protocol word `tcp` reads `udp`. Filters that look at bytes (`tcp[13] & 2 != 0`)
/// cannot be translated: then the whole dump device is captured (nothing SMC is lost).
public enum DumpFilter {
  public static func derive(_ filter: String) -> String {
    if filter.isEmpty || filter.contains("[") { return "" }
    var out = ""
    var word = ""
    func flush() {
      out += word == "tcp" ? "udp" : word
      word = ""
    }
    for character in filter {
      if character.isLetter || character.isNumber || character == "_" {
        word.append(character)
      } else {
        flush()
        out.append(character)
      }
    }
    flush()
    return out
  }
}
