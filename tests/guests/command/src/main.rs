//! A component of the wrong world: it exports `wasi:cli/run`, not `hyyve:plugin/node`.

fn main() {
    println!("I am a command, not a node plugin");
}
