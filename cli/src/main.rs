fn main() -> std::process::ExitCode {
    jit::main()
}
