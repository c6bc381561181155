//! `qaqpa`: the gateway binary (serve, sandbox, operator commands).
fn main() {
    println!("qaqpa");
}
