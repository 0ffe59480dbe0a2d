//! TEMPORARY placeholder until the gotypes branch lands.
pub struct Captured<'a> {
    pub words: &'a [u8],
    pub text: &'a [u8],
    pub text_len: u64,
}
pub struct Message {
    pub text: String,
    pub truncated: bool,
}
pub fn panic_message(_t: &super::types::TypeInfo, _c: &Captured<'_>) -> Option<Message> {
    None
}
