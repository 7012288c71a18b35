/// Parse a port number.
///
/// # Arguments
///
/// * `s` - The text to parse.
///
/// # Returns
///
/// The port, or an error.
pub fn parse_port(s: &str) -> Result<u16, std::num::ParseIntError> {
    s.trim().parse()
}
