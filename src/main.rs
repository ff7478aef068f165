fn main() {
    callqueue::start(callqueue::App);
}
