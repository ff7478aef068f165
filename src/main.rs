fn main() {
    console_error_panic_hook::set_once();
    callqueue::i18n::init();
    leptos::mount::mount_to_body(callqueue::App);
}
