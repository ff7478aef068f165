fn main() {
    callqueue::start(callqueue_console::AgentApp);
}
