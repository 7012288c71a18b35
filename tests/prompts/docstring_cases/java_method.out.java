import java.io.IOException;

class Files {
    /**
     * Read a whole file.
     *
     * @param path The file to read.
     * @return The file's bytes.
     * @throws IOException If the file cannot be read.
     */
    static byte[] readAll(String path) throws IOException {
        return java.nio.file.Files.readAllBytes(java.nio.file.Path.of(path));
    }
}
