//! TEMPORARY placeholder until the gotypes branch lands.
pub struct TypeInfo {
    pub name: String,
    pub kind: u8,
}
pub fn load_bias(_pid: u32, _bin: &super::GoBinary) -> Result<u64, String> {
    Err("todo".into())
}
pub fn type_at(_bin: &super::GoBinary, _addr: u64) -> Result<TypeInfo, String> {
    Err("todo".into())
}
pub fn package_path(_bin: &super::GoBinary, _name: &str) -> Option<String> {
    None
}
