import java.io.IOException;

class Files {
    static byte[] readAll(String path) throws IOException {
        return java.nio.file.Files.readAllBytes(java.nio.file.Path.of(path));
    }
}
