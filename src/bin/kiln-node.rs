//! `kiln-node`: the program kiln puts into images that boot (kiln-node crate).
fn main() {
    std::process::exit(kiln_node::main(std::env::args().collect()));
}
