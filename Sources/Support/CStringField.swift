extension String {
  /// The text of a fixed-size C character array (`utsname.release`, `dirent.d_name`): up to
  /// its first NUL, all of it when there is none; invalid UTF-8 is repaired.
  public init<Field>(cStringField field: Field) {
    self = withUnsafeBytes(of: field) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
  }
}
