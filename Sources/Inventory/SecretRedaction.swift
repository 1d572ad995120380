import Foundation

/// Hides secrets before text is recorded (session.json, logs): the value of every
/// `NAME=value` or `NAME: value` whose name contains `pass` (`ansible_password`,
/// `ansible_become_password`, `--password=...`), and Ansible vault values (`!vault`,
/// `$ANSIBLE_VAULT;...`).
public enum SecretRedaction {
  public static let placeholder = "<redacted>"

  // A name containing "pass", then = or a colon, then the value up to white space.
  // swift-format-ignore: NeverUseForceTry
  // A fixed pattern, compiled by every redaction test: it cannot fail at run time.
  private static let named = try! NSRegularExpression(
    pattern: #"(?i)([A-Za-z0-9_.-]*pass[A-Za-z0-9_.-]*\s*(?:=|:\s*))("[^"]*"|'[^']*'|[^\s"']+)"#)
  // swift-format-ignore: NeverUseForceTry
  // A fixed pattern, compiled by the same tests.
  private static let vault = try! NSRegularExpression(
    pattern: #"(?i)(!vault\s*\|?|\$ANSIBLE_VAULT;)[^\n]*(\n[ \t]+[0-9a-fA-F]+)*"#)

  /// `text` with secret values replaced by `<redacted>`.
  public static func redact(_ text: String) -> String {
    var out = text
    var range = NSRange(out.startIndex..., in: out)
    out = vault.stringByReplacingMatches(in: out, range: range, withTemplate: placeholder)
    range = NSRange(out.startIndex..., in: out)
    out = named.stringByReplacingMatches(in: out, range: range, withTemplate: "$1\(placeholder)")
    return out
  }

  /// An argument vector with secret values replaced: `NAME=value` forms as in `redact`, and
  /// the argument after an option whose name contains `pass` (`--password VALUE`).
  public static func redact(arguments: [String]) -> [String] {
    var out: [String] = []
    for argument in arguments {
      if let last = out.last, last.hasPrefix("-"), !last.contains("="),
        last.lowercased().contains("pass")
      {
        out.append(placeholder)
      } else {
        out.append(redact(argument))
      }
    }
    return out
  }
}
