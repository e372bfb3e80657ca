//! The `fibo` node as a native process, for the "process per invocation" baseline that
//! process-isolated plugin daemons pay: `fibo-native N` prints `{"value":fib(N)}`.

fn fib(n: u32) -> u64 {
    if n < 2 {
        n as u64
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

fn main() {
    let n = std::env::args()
        .nth(1)
        .and_then(|a| a.parse::<u32>().ok())
        .filter(|n| *n <= 40);
    match n {
        Some(n) => println!("{{\"value\":{}}}", fib(n)),
        None => {
            eprintln!("usage: fibo-native N (0..=40)");
            std::process::exit(2);
        }
    }
}
